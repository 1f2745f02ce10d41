"""What the PostgreSQL erasure record accepts as an erasure (rows of an ``erasures`` table, from
a database or a dump: untrusted), and the one line about a ``pg_dump`` too old for the server."""

from __future__ import annotations

from datetime import datetime

import pytest

from watchdog.data import pgdump
from watchdog.data.erasures_pg import entries_of, entry_of

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
