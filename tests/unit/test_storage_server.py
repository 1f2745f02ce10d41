"""What matters most once the database may be a server, on SQLite and PostgreSQL alike: search
folds words the same way, a failed call leaves its batch usable, and an update is claimed once
by its unique key when two instances share the database."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from bot.storage import Storage
from tests.helpers import wait_until
from tests.storage_backends import StorageBackend
from tests.unit.test_storage import ANN, T0, _chat, _message


@pytest.fixture
def storage(storage_backend: StorageBackend) -> Iterator[Storage]:
    opened = Storage.open(storage_backend.target)
    try:
        yield opened
    finally:
        opened.close()


def test_search_folds_case_and_accents_in_any_script_and_takes_prefixes(
    storage: Storage,
) -> None:
    storage.record_message(_message(1, "Привет, Ёлка! A naïve Approach"), ANN, _chat(), T0)
    storage.add_note(42, "crème brûlée", T0)
    expected = ["Привет, Ёлка! A naïve Approach"]
    for query in ("привет", "ПРИВ", "ЁЛКА", "NAIVE appro", "ёлк naïv"):
        assert [h.text for h in storage.search(42, query)] == expected, query
    assert [h.text for h in storage.search(42, "CREME brul")] == ["crème brûlée"]
    for odd in ("ŉ ʼ", "_", "a'b", "x\\y", "%_%", "x:*|y", "!( & )"):
        storage.search(42, odd)  # letters that fold into quotes, tsquery and LIKE syntax
    assert storage.search(42, "zebra") == []


def test_a_call_that_fails_in_a_batch_leaves_the_rest_of_the_batch(
    storage: Storage, storage_backend: StorageBackend
) -> None:
    """PostgreSQL aborts a transaction at its first error; the storage keeps SQLite's way: the
    handler's error is its own, the batch goes on and commits (on PostgreSQL the failed call is
    undone as a whole, by its savepoint; SQLite keeps what the call wrote before it failed)."""
    storage.begin_batch()
    storage.record_message(_message(1, "kept"), ANN, _chat(), T0)
    with pytest.raises(Exception, match=r"(?i)out of range|too large|overflow"):
        storage.record_message(_message(2, "failed"), {"id": 2**70}, _chat(), T0)
    storage.record_message(_message(3, "kept too"), ANN, _chat(), T0)
    storage.commit_batch([5], T0)
    texts = [m["text"] for m in storage.messages_page(42, 0, 10)]
    assert texts == (
        ["kept", "failed", "kept too"] if storage_backend.is_sqlite else ["kept", "kept too"]
    )
    assert storage.is_processed(5)


def test_an_update_claimed_by_two_instances_is_theirs_once(
    storage_backend: StorageBackend,
) -> None:
    """Two Storage objects on one database, as two bot instances: the second claim of an update
    waits for the first one's batch, and is refused once it commits (granted if it rolls back)."""
    first, second = Storage.open(storage_backend.target), Storage.open(storage_backend.target)
    try:
        assert first.claim_update(7, T0)
        assert not first.claim_update(7, T0), "the same instance: already claimed"
        if storage_backend.is_sqlite:
            first.rollback_batch()
            assert second.claim_update(7, T0)
            second.commit_batch([7], T0)
            return
        with ThreadPoolExecutor(1) as pool:  # the second instance's one database thread
            waiting = pool.submit(second.claim_update, 7, T0)
            wait_until(
                lambda: storage_backend.rows(
                    "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND application_name = 'erixcast-bot'"
                ),
                10,
                what="the second claim to wait for the first batch",
            )
            first.commit_batch([7], T0)
            assert waiting.result(10) is False
            pool.submit(second.rollback_batch).result(10)
            assert first.claim_update(8, T0)
            waiting = pool.submit(second.claim_update, 8, T0)
            wait_until(
                lambda: storage_backend.rows(
                    "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                ),
                10,
                what="the second claim to wait again",
            )
            first.rollback_batch()
            assert waiting.result(10) is True
            pool.submit(second.commit_batch, [8], T0).result(10)
        assert storage_backend.rows("SELECT update_id FROM processed_updates ORDER BY 1") == [
            {"update_id": 7},
            {"update_id": 8},
        ]
    finally:
        first.close()
        second.close()
