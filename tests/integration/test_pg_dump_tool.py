"""The watchdog on a real PostgreSQL server says at once, in one line, when the machine's
``pg_dump`` cannot back the server up (older than the server, or none), instead of only when
the first dump fails. The tool is a stand-in program that answers ``--version`` as an older
client would (the machine's own is as new as the test server)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.integration.test_pg_watchdog import guard_on
from tests.pg import PostgresServer
from watchdog.data import pgdump
from watchdog.data.snapshot import SnapshotError

pytestmark = pytest.mark.integration


def said(ctx) -> list[str]:
    return [event.message for event in ctx.state.events if event.kind == "backups"]


def test_a_pg_dump_older_than_the_server_is_said_once_at_start(
    postgres: PostgresServer, tmp_path: Path, monkeypatch
) -> None:
    old = tmp_path / "pg_dump"
    old.write_text("#!/bin/sh\necho 'pg_dump (PostgreSQL) 13.16'\n")
    old.chmod(0o755)
    monkeypatch.setattr(pgdump, "find_tool", lambda name: old)
    guard, ctx = guard_on(tmp_path, monkeypatch, postgres.url(postgres.create_database()))
    asyncio.run(guard.start_up())
    assert guard.bot.launchable(), "the bot runs: only the backups cannot"
    (line,) = said(ctx)
    assert line.startswith("no backup possible: pg_dump 13 cannot dump a PostgreSQL 15 server")
    assert "postgresql-client-15" in line and "\n" not in line
    asyncio.run(guard.check())
    assert len(said(ctx)) == 1, "said once, not at every probe"


def test_no_pg_dump_at_all_is_said_too(postgres: PostgresServer, tmp_path: Path, monkeypatch):
    def missing(name: str) -> Path:
        raise SnapshotError(f"{name} is not installed (Debian: postgresql-client)")

    monkeypatch.setattr(pgdump, "find_tool", missing)
    guard, ctx = guard_on(tmp_path, monkeypatch, postgres.url(postgres.create_database()))
    asyncio.run(guard.start_up())
    assert said(ctx) == ["no backup possible: pg_dump is not installed (Debian: postgresql-client)"]


def test_a_pg_dump_as_new_as_the_server_says_nothing(
    postgres: PostgresServer, tmp_path: Path, monkeypatch
) -> None:
    guard, ctx = guard_on(tmp_path, monkeypatch, postgres.url(postgres.create_database()))
    asyncio.run(guard.start_up())
    assert said(ctx) == []
