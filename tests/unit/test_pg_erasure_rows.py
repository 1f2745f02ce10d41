"""What the PostgreSQL erasure record accepts as an erasure (rows of an ``erasures`` table, from
a database or a dump: untrusted), what making it again removes on a real server, and the one
line about a ``pg_dump`` too old for the server."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from bot.storage import IncomingMessage, Storage
from conf.journal_lines import ERASURE, JournalEntry
from tests.pg import PostgresServer
from watchdog.data import pgdump
from watchdog.data.erasures import ErasureReport
from watchdog.data.erasures_pg import entries_of, entry_of, erase_on_server

AT = "2026-03-02T10:00:00.123456+00:00"


def test_a_row_is_an_erasure_with_its_user_update_and_time() -> None:
    entry = entry_of("42", "7", AT)
    assert (entry.kind, entry.user_id, entry.update_id) == ("erasure", 42, 7)
    assert entry.at == datetime.fromisoformat(AT).timestamp()


@pytest.mark.parametrize(
    "row",
    [
        ("x", "7", AT),
        ("42", "\\N", AT),
        ("42", "-1", AT),
        ("42", "7", "yesterday"),
        ("42", "7", "2026-03-02T10:00:00"),  # no zone: not a time the bot writes
        ("42", "7"),
        ("42", "7", AT, "extra"),
    ],
)
def test_anything_else_is_left_out_and_counted(row: tuple[str, ...]) -> None:
    entries, problems = entries_of([row, ("43", "8", AT)], "dump.pgdump")
    assert [e.user_id for e in entries] == [43]
    assert problems == ["dump.pgdump: 1 rows of its erasures table are not erasures"]


def test_a_pg_dump_older_than_the_server_is_named_in_one_line() -> None:
    major = pgdump.tool_major(pgdump.find_tool("pg_dump"))
    assert pgdump.dump_tool_problem(major * 10000 + 3) is None
    problem = pgdump.dump_tool_problem((major + 2) * 10000)
    assert problem is not None and "\n" not in problem
    assert f"pg_dump {major} cannot dump a PostgreSQL {major + 2} server" in problem
    assert f"postgresql-client-{major + 2}" in problem


def test_made_again_on_a_server_what_dates_from_before_the_erasure_goes(
    postgres: PostgresServer,
) -> None:
    """On a real server, rows written by the bot's own storage: the erased user's messages,
    notes, user and private-chat rows and persistence rows from before the erasure go; what
    they wrote after it (as a new user) stays, and so does everyone else's. Twice is once."""
    url = postgres.url(postgres.create_database())
    before, erased_at, after = (datetime(2026, 3, 1, h, tzinfo=UTC) for h in (9, 10, 11))
    storage = Storage.open(url)
    try:
        user = {"id": 42, "first_name": "Ann"}
        storage.record_message(said(42, 1, "old secret", before, 100), user, PRIVATE, before)
        storage.record_message(said(43, 1, "theirs", before, 101), {"id": 43}, THEIRS, before)
        storage.add_note(42, "old note", before)
        storage.write_persistence(
            [("user_data", "", "42", "{}"), ("conversation", "remember", "[42, 42]", '"x"')],
            before,
        )
        storage.outbox_add(42, "sendMessage", {"chat_id": 42, "text": "old"}, before)
        storage.add_note(42, "written after", after)
        storage.record_message(said(42, 9, "new words", after, 300), user, PRIVATE, after)
    finally:
        storage.close()
    erasure = JournalEntry(ERASURE, 200, erased_at.timestamp(), 42)
    with psycopg.connect(url) as connection:
        first = ErasureReport()
        erase_on_server(connection, [erasure], first)
        again = ErasureReport()
        erase_on_server(connection, [erasure], again)
        texts = [r[0] for r in connection.execute("SELECT text FROM messages ORDER BY id")]
        notes = [r[0] for r in connection.execute("SELECT text FROM notes ORDER BY id")]
        state = connection.execute("SELECT count(*) FROM persistence").fetchone()
        recorded = connection.execute("SELECT user_id, update_id FROM erasures").fetchall()
        outbox = connection.execute("SELECT count(*) FROM outbox").fetchone()
    assert texts == ["theirs", "new words"] and notes == ["written after"]
    assert state == (0,) and outbox == (0,) and recorded == [(42, 200)]
    assert first.users == 1 and first.rows["messages"] == 1 and first.rows["persistence"] == 2
    assert again.users == 0 and again.rows == {}


PRIVATE = {"id": 42, "type": "private"}
THEIRS = {"id": 43, "type": "private"}


def said(user_id: int, message_id: int, text: str, at: datetime, update_id: int) -> Any:
    return IncomingMessage(user_id, message_id, user_id, "text", text, at, update_id)
