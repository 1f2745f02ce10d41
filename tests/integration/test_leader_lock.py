"""The backup leadership on a real PostgreSQL server (``data.leader_lock``, ``runtime.leadership``):
one holder per database, a follower that reads who leads, a lost session that is lost
leadership (said, then tried again), and a lock that is per database."""

from __future__ import annotations

import asyncio
from pathlib import Path

import psycopg
import pytest

from tests.pg import PostgresServer
from tests.runtime_context import runtime_context
from watchdog.data import server as pg
from watchdog.data.kinds import PostgresDatabase
from watchdog.data.leader_lock import LeaderLock
from watchdog.rules.leader import Role
from watchdog.runtime.context import RuntimeContext
from watchdog.runtime.leadership import Leadership

pytestmark = pytest.mark.integration


def leadership(
    tmp_path: Path, url: str, name: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[Leadership, RuntimeContext]:
    kind = PostgresDatabase(pg.Server.from_url(url))
    ctx = runtime_context(monkeypatch, tmp_path / name, kind=kind)
    return Leadership(ctx, LeaderLock(kind.server, f"test-watchdog {name}")), ctx


def terminate(url: str, application_name: str) -> int:
    with psycopg.connect(url, autocommit=True) as connection:
        rows = connection.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            (application_name,),
        ).fetchall()
    return len(rows)


def test_one_holder_a_lost_session_is_lost_leadership_and_tried_again(
    postgres: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = postgres.url(postgres.create_database())
    first, first_ctx = leadership(tmp_path, url, "a", monkeypatch)
    second, second_ctx = leadership(tmp_path, url, "b", monkeypatch)
    a, b = first_ctx.state.leader, second_ctx.state.leader
    assert a.role is Role.UNKNOWN and b.role is Role.UNKNOWN

    async def scenario() -> None:
        try:
            await first.try_now()
            await second.try_now()
            assert (a.role, b.role) == (Role.LEADER, Role.FOLLOWER)
            assert b.holder == "test-watchdog a"
            await first.try_now()  # a leader's try is a ping: still the one, never stacked
            await second.try_now()
            assert (a.role, b.role) == (Role.LEADER, Role.FOLLOWER)

            assert terminate(url, "test-watchdog a") == 1
            await first.try_now()
            assert a.role is Role.UNKNOWN and a.detail
            assert "erixcast-test-password" not in a.detail
            messages = [e.message for e in first_ctx.state.events]
            assert any("backup leadership lost" in m for m in messages)
            await second.try_now()
            assert b.role is Role.LEADER and b.changes == 1
            await first.try_now()  # a new session: the lock is the other's now
            assert a.role is Role.FOLLOWER and a.holder == "test-watchdog b"

            await second.close()  # a leader that stops gives the lock back with its session
            await first.try_now()
            assert a.role is Role.LEADER and a.changes == 2
        finally:
            await first.close()
            await second.close()

    asyncio.run(asyncio.wait_for(scenario(), 120))


def test_the_lock_is_per_database(postgres: PostgresServer, tmp_path: Path) -> None:
    one, two = (postgres.url(postgres.create_database()) for _ in range(2))

    async def scenario() -> None:
        locks = [LeaderLock(pg.Server.from_url(url), f"t{n}") for n, url in enumerate((one, two))]
        try:
            assert [await lock.try_lead() for lock in locks] == [True, True]
        finally:
            for lock in locks:
                await lock.close()

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_a_server_that_is_down_is_unknown_with_its_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.helpers import free_port

    url = f"postgresql://erixcast:secret-pw-1@127.0.0.1:{free_port()}/nowhere"
    follower, ctx = leadership(tmp_path, url, "c", monkeypatch)

    async def scenario() -> None:
        await follower.try_now()
        await follower.try_now()

    asyncio.run(asyncio.wait_for(scenario(), 60))
    state = ctx.state.leader
    assert state.role is Role.UNKNOWN and "unreachable" in state.detail
    assert "secret-pw-1" not in state.detail
    assert follower.failures == 2
    assert follower.next_at - ctx.clock.monotonic() == pytest.approx(4.0)
