"""bot.storage against a real SQLite file and a real PostgreSQL database (each test that is not
about one of them runs on both), read back through a connection of its own."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from bot.storage import DatabaseThread, Storage, UserRecord, timestamp
from tests.storage_backends import StorageBackend

T0 = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
ANN = {"id": 42, "first_name": "Ann", "last_name": None, "username": None, "language_code": "en"}


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "erixcast.db"


@pytest.fixture
def storage(storage_backend: StorageBackend) -> Iterator[Storage]:
    opened = Storage.open(storage_backend.target)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def sqlite_storage(db_path: Path) -> Iterator[Storage]:
    opened = Storage.open(db_path)
    try:
        yield opened
    finally:
        opened.close()


def read_users(backend: StorageBackend) -> list[dict]:
    """Through another connection, as another process would see it."""
    return backend.rows("SELECT * FROM users ORDER BY id")


def test_schema_is_created_up_front(sqlite_storage: Storage, db_path: Path) -> None:
    with sqlite3.connect(db_path) as conn:
        columns = {row[1]: row for row in conn.execute("PRAGMA table_info(users)")}
    assert set(columns) == {
        "id",
        "first_name",
        "last_name",
        "username",
        "language_code",
        "first_seen",
        "last_seen",
        "message_count",
    }
    assert columns["id"][5] == 1  # the primary key
    assert columns["message_count"][3] == 1  # NOT NULL
    assert read_users(StorageBackend("sqlite", db_path)) == []


def test_schema_creation_is_idempotent_and_keeps_data(
    storage_backend: StorageBackend,
) -> None:
    first = Storage.open(storage_backend.target)
    first.touch_user(ANN, T0)
    first.close()
    second = Storage.open(storage_backend.target)
    try:
        assert second.get_user(42) is not None
        assert second.count_users() == 1
    finally:
        second.close()


def test_sqlite_pragmas_are_set_on_connect(sqlite_storage: Storage) -> None:
    with sqlite_storage.db as tx:
        values = {
            pragma: next(iter(tx.query(f"PRAGMA {pragma}")))
            for pragma in (
                "journal_mode",
                "synchronous",
                "busy_timeout",
                "foreign_keys",
                "secure_delete",
            )
        }
    flat = {pragma: next(iter(row.values())) for pragma, row in values.items()}
    assert flat == {
        "journal_mode": "wal",
        "synchronous": 2,
        "busy_timeout": 5000,
        "foreign_keys": 1,
        "secure_delete": 1,
    }


def test_with_the_journal_open_commits_stop_waiting_for_the_disk(sqlite_storage: Storage) -> None:
    sqlite_storage.lean_on_journal()
    sqlite_storage.begin_batch()
    sqlite_storage.commit_batch([7], datetime.now(UTC))
    with sqlite_storage.db as tx:
        assert next(iter(next(iter(tx.query("PRAGMA synchronous"))).values())) == 1  # NORMAL


def test_on_postgresql_there_is_no_journal_to_lean_on(
    storage: Storage,
    storage_backend: StorageBackend,
) -> None:
    if storage_backend.is_sqlite:
        pytest.skip("SQLite leans on the journal (the test above)")
    with pytest.raises(RuntimeError, match="journal is SQLite's"):
        storage.lean_on_journal()


def test_touch_user_inserts_then_updates(storage: Storage, storage_backend: StorageBackend) -> None:
    first = storage.touch_user(ANN, T0)
    assert first == UserRecord(
        id=42,
        first_name="Ann",
        last_name=None,
        username=None,
        language_code="en",
        first_seen=T0,
        last_seen=T0,
        message_count=1,
    )
    assert first.is_new

    later = T0 + timedelta(minutes=5)
    renamed = {**ANN, "first_name": "Anna", "last_name": "Smith", "username": "anna"}
    second = storage.touch_user(renamed, later)
    assert second.message_count == 2
    assert not second.is_new
    assert (second.first_name, second.last_name, second.username) == ("Anna", "Smith", "anna")
    assert second.first_seen == T0
    assert second.last_seen == later

    assert storage.touch_user(renamed, later).message_count == 3
    fourth = storage.touch_user(renamed, later)
    assert storage.get_user(42) == fourth
    assert fourth.message_count == 4


def test_counts_per_user(storage: Storage) -> None:
    for user_id, times in ((1, 3), (2, 1), (3, 2)):
        for _ in range(times):
            storage.touch_user({"id": user_id, "first_name": f"U{user_id}"}, T0)
    assert storage.count_users() == 3
    counts = {uid: storage.get_user(uid).message_count for uid in (1, 2, 3)}  # type: ignore[union-attr]
    assert counts == {1: 3, 2: 1, 3: 2}
    assert storage.get_user(4) is None


def test_values_round_trip(storage: Storage, storage_backend: StorageBackend) -> None:
    big_id = 7_999_999_999  # Telegram ids no longer fit in 32 bits
    odd = {
        "id": big_id,
        "first_name": "Zoë 🚀 'quote\" ; DROP TABLE users; --",
        "last_name": "",
        "username": "zoe_x",
        "language_code": "pt-br",
    }
    moment = datetime(2025, 1, 2, 3, 4, 5, 6, tzinfo=timezone(timedelta(hours=2)))
    record = storage.touch_user(odd, moment)
    assert record.id == big_id
    assert record.first_name == odd["first_name"]
    assert record.last_name == ""
    assert record.language_code == "pt-br"
    assert record.first_seen == moment  # same instant, stored in UTC
    assert record.first_seen.utcoffset() == timedelta(0)
    (row,) = read_users(storage_backend)
    assert row["id"] == big_id
    assert row["first_name"] == odd["first_name"]
    assert row["first_seen"] == "2025-01-02T01:04:05.000006+00:00"


def test_writes_are_committed_for_other_connections(
    storage: Storage, storage_backend: StorageBackend
) -> None:
    storage.touch_user(ANN, T0)
    storage.touch_user(ANN, T0 + timedelta(seconds=1))
    rows = read_users(storage_backend)
    assert len(rows) == 1
    assert rows[0]["message_count"] == 2
    assert rows[0]["last_seen"] == timestamp(T0 + timedelta(seconds=1))
    # Nothing left holding a lock: another connection can write at once.
    storage_backend.execute("UPDATE users SET username = 'x' WHERE id = 42")


def test_naive_timestamps_are_refused(storage: Storage) -> None:
    with pytest.raises(ValueError):
        storage.touch_user(ANN, datetime(2025, 1, 1))
    assert storage.count_users() == 0


def test_database_thread_runs_calls_on_one_thread(
    storage_backend: StorageBackend,
) -> None:
    worker = DatabaseThread()
    try:
        storage = worker.call(Storage.open, storage_backend.target)
        seen: set[int] = set()

        def touch(n: int) -> UserRecord:
            seen.add(threading.get_ident())
            return storage.touch_user({"id": n % 3, "first_name": "U"}, T0)

        async def many() -> list[UserRecord]:
            return await asyncio.gather(*(worker.run(touch, n) for n in range(30)))

        asyncio.run(many())
        assert len(seen) == 1 and threading.get_ident() not in seen
        assert worker.call(storage.count_users) == 3
        assert sum(r["message_count"] for r in read_users(storage_backend)) == 30
        worker.call(storage.close)
    finally:
        worker.shutdown()


# --------------------------------------------------------------------- history, notes, search
def _message(message_id: int, text: str | None, user_id: int = 42, kind: str = "text") -> Any:
    from bot.storage import IncomingMessage

    return IncomingMessage(
        chat_id=user_id,
        message_id=message_id,
        user_id=user_id,
        kind=kind,
        text=text,
        sent_at=T0,
    )


def _chat(user_id: int = 42) -> dict[str, Any]:
    return {"id": user_id, "type": "private"}


def test_history_counts_each_message_once_and_follows_edits(storage: Storage) -> None:
    user, stored = storage.record_message(_message(1, "hello fox"), ANN, _chat(), T0)
    assert stored and user is not None and user.message_count == 1
    again, stored = storage.record_message(_message(1, "hello fox"), ANN, _chat(), T0)
    assert not stored and again is not None and again.message_count == 1, "a redelivery"
    storage.record_message(_message(2, None, kind="photo"), ANN, _chat(), T0)
    assert storage.record_edit(_message(1, "hello wolf"), T0)
    assert not storage.record_edit(_message(9, "edit of an unseen message"), T0)
    assert [h.text for h in storage.search(42, "wolf")] == ["hello wolf"]
    assert storage.search(42, "fox") == [], "the index follows the edit"
    stats = storage.user_stats(42)
    assert stats["messages"] == 3 and stats["by_kind"] == {"text": 2, "photo": 1}
    assert stats["edited"] == 2


def test_notes_are_numbered_idempotent_and_bounded(storage: Storage) -> None:
    first = storage.add_note(42, "one", T0, (42, 1))
    assert storage.add_note(42, "one", T0, (42, 1)) == first, "same source: same note"
    storage.add_note(42, "two", T0, (42, 2))
    storage.add_note(43, "other user's", T0, (43, 3))
    assert [(n.number, n.text) for n in storage.notes_page(42, 0, 100)] == [(1, "one"), (2, "two")]
    assert storage.forget_note(42, 1) is not None
    assert storage.forget_note(42, 5) is None
    assert [(n.number, n.text) for n in storage.notes_page(42, 0, 100)] == [(1, "two")]
    with pytest.raises(ValueError):
        storage.add_note(42, " ", T0)
    with pytest.raises(ValueError):
        storage.add_note(42, "x" * 4097, T0)


def test_search_ranks_own_messages_and_notes_and_ignores_commands(storage: Storage) -> None:
    for n, text_ in enumerate(
        ["a fox in a long sentence about many other things", "fox fox fox", "/search fox"], 1
    ):
        storage.record_message(_message(n, text_), ANN, _chat(), T0)
    storage.record_message(_message(10, "fox of user 43", user_id=43), None, _chat(43), T0)
    storage.add_note(42, "Fox café notes", T0)
    hits = storage.search(42, "FOX")
    assert hits[0].text == "fox fox fox"
    assert {h.kind for h in hits} == {"message", "note"}
    assert all("43" not in h.text and not h.text.startswith("/") for h in hits)
    assert [h.text for h in storage.search(42, "cafe")] == ["Fox café notes"]
    assert storage.search(42, "") == []
    storage.search(42, '"*) OR NEAR(')  # FTS syntax in a query is only words
    assert storage.search(42, "fox zebra") != [], "no match for all words: any word"


def test_erase_user_leaves_no_row(storage: Storage, storage_backend: StorageBackend) -> None:
    storage.record_message(_message(1, "mine"), ANN, _chat(), T0)
    storage.add_note(42, "note", T0)
    storage.record_message(_message(2, "theirs", user_id=43), {"id": 43}, _chat(43), T0)
    storage.write_persistence(
        [
            ("user_data", "", "42", "{}"),
            ("chat_data", "", "42", "{}"),
            ("conversation", "remember", '{"$tuple":[42,42]}', '"drafting"'),
            ("conversation", "remember", '{"$tuple":[43,43]}', '"drafting"'),
            ("user_data", "", "43", "{}"),
        ],
        T0,
    )
    storage.outbox_add(42, "sendMessage", {"chat_id": 42, "text": "your note: secret"}, T0)
    storage.outbox_add(43, "sendMessage", {"chat_id": 43, "text": "someone else's"}, T0)
    counts = storage.erase_user(42)
    assert counts == {
        "messages": 1,
        "notes": 1,
        "users": 1,
        "chats": 1,
        "outbox": 1,
        "persistence": 3,
    }
    assert [chat for _, chat, _, _ in storage.outbox_pending(["sendMessage"])] == [43]
    for table in ("users", "chats", "messages", "notes"):
        for row in storage_backend.rows(f"SELECT * FROM {table}"):
            assert 42 not in row.values(), (table, row)
    assert storage_backend.rows("SELECT COUNT(*) AS n FROM persistence") == [{"n": 2}]
    if storage_backend.is_sqlite:
        assert storage_backend.rows("SELECT COUNT(*) AS n FROM messages_fts") == [{"n": 1}]


def test_an_outbox_id_is_never_given_twice_while_the_bot_runs(
    storage: Storage, storage_backend: StorageBackend
) -> None:
    """The newest row sent and cleared, the next message still gets an id of its own (SQLite by
    itself would hand out the cleared one again, while its lane may not be done with it)."""
    params = {"chat_id": 42, "text": "noted"}
    first = storage.outbox_add(42, "sendMessage", params, T0)
    storage.outbox_done([first])
    second = storage.outbox_add(42, "sendMessage", params, T0)
    storage.outbox_done([second])
    third = storage.outbox_add(42, "sendMessage", params, T0)
    assert first < second < third
    assert [row[0] for row in storage.outbox_pending(["sendMessage"])] == [third]
    reopened = Storage.open(storage_backend.target)  # a new run starts above what is stored
    try:
        assert reopened.outbox_add(42, "sendMessage", params, T0) > third
    finally:
        reopened.close()


def test_an_outbox_holding_the_largest_rowid_still_takes_messages(
    sqlite_storage: Storage, db_path: Path
) -> None:
    """A database from elsewhere whose outbox holds id 2**63 - 1: no id above it exists, and
    the bot's replies are stored all the same (each under an id of its own)."""
    with sqlite3.connect(db_path) as raw:
        raw.execute(
            "INSERT INTO outbox (id, chat_id, method, params, created_at) "
            "VALUES (?, 7, 'sendMessage', '{}', 'then')",
            (2**63 - 1,),
        )
    params = {"chat_id": 42, "text": "noted"}
    ids = [sqlite_storage.outbox_add(42, "sendMessage", params, T0) for _ in range(3)]
    assert len(set(ids)) == 3 and 2**63 - 1 not in ids
    assert len(sqlite_storage.outbox_pending(["sendMessage"])) == 4


def test_a_batch_commits_effects_and_update_ids_together(
    storage: Storage, storage_backend: StorageBackend
) -> None:
    storage.begin_batch()
    storage.record_message(_message(1, "in a batch"), ANN, _chat(), T0)
    assert read_users(storage_backend) == [], "nothing visible before the commit"
    storage.rollback_batch()
    assert storage.get_user(42) is None and not storage.is_processed(5)
    storage.begin_batch()
    storage.record_message(_message(1, "in a batch"), ANN, _chat(), T0)
    storage.commit_batch([5, 6], T0)
    assert storage.is_processed(5) and storage.is_processed(6)
    assert len(read_users(storage_backend)) == 1
    assert storage.prune_processed(T0 + timedelta(days=8)) == 2


def test_odd_text_is_stored(storage: Storage) -> None:
    user = {**ANN, "first_name": "bad \ud800 name"}
    storage.record_message(_message(1, "nul \x00 and \ud83d alone"), user, _chat(), T0)
    assert storage.get_user(42).first_name == "bad \ufffd name"  # type: ignore[union-attr]
    # PostgreSQL's text cannot hold NUL: on both databases it becomes U+FFFD, like a surrogate.
    assert storage.messages_page(42, 0, 10)[0]["text"] == "nul \ufffd and \ufffd alone"
