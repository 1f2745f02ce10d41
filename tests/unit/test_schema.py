"""conf/schema.sql is the one definition of the bot's schema: what the bot creates, what the
watchdog expects."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

from bot.storage import IncomingMessage, Storage
from conf import schema

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def sqlite_master(path: Path) -> list[tuple[str, str, str, str | None]]:
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY rowid"
        ).fetchall()


def made_by_the_bot(path: Path) -> Path:
    Storage.open(path).close()
    return path


def test_the_ddl_gives_exactly_what_the_bot_creates(tmp_path: Path) -> None:
    from_ddl = tmp_path / "ddl.db"
    with closing(sqlite3.connect(from_ddl)) as conn:
        conn.executescript(schema.schema_sql())
    assert sqlite_master(from_ddl) == sqlite_master(made_by_the_bot(tmp_path / "bot.db"))


def test_a_database_made_by_the_bot_has_exactly_the_expected_schema(tmp_path: Path) -> None:
    assert sqlite_master(made_by_the_bot(tmp_path / "bot.db")) == list(schema.expected_schema())


def test_opening_again_changes_nothing(tmp_path: Path) -> None:
    path = made_by_the_bot(tmp_path / "bot.db")
    Storage.open(path).close()
    assert sqlite_master(path) == list(schema.expected_schema())


def test_the_tables_and_their_roles() -> None:
    assert schema.TABLES == (
        "users",
        "chats",
        "messages",
        "notes",
        "persistence",
        "processed_updates",
        "outbox",
        "erasures",
        "outbox_claims",
    )
    assert schema.MERGEABLE_TABLES == ("users", "chats", "messages", "notes", "processed_updates")
    assert set(schema.MERGEABLE_TABLES) < set(schema.TABLES)
    assert schema.SEARCH_INDEXES == ("messages_fts", "notes_fts")


def test_every_table_in_the_schema_is_accounted_for() -> None:
    declared = set(schema.TABLES) | set(schema.SEARCH_INDEXES)
    for kind, name, _, _ in schema.expected_schema():
        if kind == "table":
            owner = name.rsplit("_", 1)[0] if name not in declared else name
            assert owner in declared, f"{name} has no role in conf/schema.sql"


def test_statements_run_one_by_one_give_the_same_schema() -> None:
    with closing(sqlite3.connect(":memory:")) as conn:
        for statement in schema.statements():
            assert sqlite3.complete_statement(statement + ";")
            conn.execute(statement)
        rows = conn.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY rowid"
        ).fetchall()
    assert rows == list(schema.expected_schema())


def test_an_older_database_gets_its_search_index_built(tmp_path: Path) -> None:
    path = made_by_the_bot(tmp_path / "bot.db")
    storage = Storage.open(path)
    storage.record_message(
        IncomingMessage(42, 1, 42, "text", "fresh milk", T0),
        None,
        {"id": 42, "type": "private"},
        T0,
    )
    storage.add_note(42, "buy milk", T0)
    storage.close()
    with closing(sqlite3.connect(path)) as conn:
        for index in schema.SEARCH_INDEXES:
            conn.execute(f"DROP TABLE {index}")
        conn.commit()
    storage = Storage.open(path)
    try:
        assert sorted(hit.text for hit in storage.search(42, "milk")) == ["buy milk", "fresh milk"]
    finally:
        storage.close()
    assert sorted(sqlite_master(path), key=str) == sorted(schema.expected_schema(), key=str)
