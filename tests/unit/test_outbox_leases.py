"""The outbox on a server shared by instances (real PostgreSQL, two Storage objects as two
instances): a row is claimed by the instance that wrote it, in the update's transaction; no
other instance takes it while the lease holds; an expired or released lease is taken over by
exactly one instance, however many sweep at once; rows from before claims are taken too."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from bot.delivery import METHODS
from bot.storage import Storage
from tests.pg import PostgresServer

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def url(postgres: PostgresServer) -> str:
    return postgres.url(postgres.create_database())


@pytest.fixture
def pair(url: str) -> Iterator[tuple[Storage, Storage]]:
    first, second = Storage.open(url), Storage.open(url)
    first.outbox_owner, second.outbox_owner = "first", "second"
    try:
        yield first, second
    finally:
        first.close()
        second.close()


def stored(storage: Storage, chat_id: int, text: str) -> int:
    """A message staged by an update and committed with it, as the processor does."""
    storage.begin_batch()
    row_id = storage.outbox_add(chat_id, "sendMessage", {"chat_id": chat_id, "text": text}, T0)
    storage.commit_batch([row_id + 1000], T0)
    return row_id


def expire(storage: Storage, owner: str) -> None:
    """The owner's leases run out (it was killed, or its renewals failed for a lease)."""
    with storage.db.engine.begin() as conn:
        conn.exec_driver_sql(
            "UPDATE outbox_claims SET expires_ms = 0 WHERE claimed_by = %(o)s", {"o": owner}
        )


def ids(rows: list) -> list[int]:
    return [row[0] for row in rows]


def test_a_live_instances_rows_are_not_taken_until_its_lease_expires(pair) -> None:
    first, second = pair
    mine = stored(first, 7, "reply")
    assert second.outbox_take(METHODS) == [], "taken while its sender's lease holds"
    assert first.outbox_renew() == 1
    assert second.outbox_take(METHODS) == []
    expire(first, "first")
    assert ids(second.outbox_take(METHODS)) == [mine]
    assert first.outbox_take(METHODS) == [], "taken back while the new holder's lease holds"
    assert first.outbox_renew() == 0 and second.outbox_renew() == 1
    second.outbox_done([mine])
    assert second.outbox_renew() == 0, "a sent row's claim goes with it"


def test_a_rolled_back_update_leaves_no_claim(pair) -> None:
    first, second = pair
    first.begin_batch()
    first.outbox_add(7, "sendMessage", {"chat_id": 7, "text": "never"}, T0)
    first.rollback_batch()
    assert first.outbox_renew() == 0
    assert second.outbox_take(METHODS) == []


def test_a_released_lease_is_taken_at_once(pair) -> None:
    first, second = pair
    rows = [stored(first, 7, f"reply {n}") for n in range(3)]
    assert first.outbox_release() == 3
    assert ids(second.outbox_take(METHODS)) == rows


def test_rows_from_before_claims_are_taken(pair, url: str) -> None:
    first, second = pair
    legacy = Storage.open(url)  # no owner: writes no claim, as the bot before leases did
    try:
        old = stored(legacy, 9, "from an older version")
    finally:
        legacy.close()
    assert ids(first.outbox_take(METHODS)) == [old]
    assert second.outbox_take(METHODS) == []


def test_instances_sweeping_at_once_never_take_the_same_row(pair) -> None:
    first, second = pair
    rows = [stored(first, chat, "hello") for chat in range(1, 301)]
    expire(first, "first")
    taken: dict[str, list[int]] = {}
    start = threading.Barrier(2)

    def sweep(storage: Storage, name: str) -> None:
        start.wait(timeout=30)
        got: list[int] = []
        while batch := ids(storage.outbox_take(METHODS, limit=7)):
            got += batch
        taken[name] = got

    threads = [
        threading.Thread(target=sweep, args=(first, "first")),
        threading.Thread(target=sweep, args=(second, "second")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    assert not set(taken["first"]) & set(taken["second"]), "a row taken by both"
    assert sorted(taken["first"] + taken["second"]) == rows


def test_an_erased_users_unsent_messages_and_their_claims_go(pair) -> None:
    first, second = pair
    stored(first, 42, "about you")
    kept = stored(first, 43, "someone else")
    first.erase_user(42)
    expire(first, "first")
    assert ids(second.outbox_take(METHODS)) == [kept]
    assert second.outbox_renew() == 1
