"""What the running watchdog tells its monitors, on a fake clock: a heartbeat ping after each
scheduled backup (``/fail`` when it failed), failure counters per tier, and the history that
the status page charts — with a real BackupKeeper over a real SQLite file."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from tests.helpers import TEST_RETENTION
from tests.runtime_context import runtime_context
from watchdog.data.backups import BackupKeeper
from watchdog.rules.state import Integrity
from watchdog.runtime.context import RuntimeContext
from watchdog.runtime.jobs import BackupJobs


class RecordingPinger:
    def __init__(self) -> None:
        self.pings: list[bool] = []

    async def ping(self, ok: bool) -> bool:
        self.pings.append(ok)
        return True


class FullDiskKeeper:
    class catalogue:  # stands in for the keeper's attribute
        @staticmethod
        def scan() -> list:
            return []

        @staticmethod
        def newest_by_tier(backups: list) -> dict:
            return {}

    def staged(self) -> list:
        return []

    def take(self, tier: str, reason: str, now: float, **_: object):
        raise OSError(28, "No space left on device")


@pytest.fixture
def ctx(tmp_path, monkeypatch) -> RuntimeContext:
    made = runtime_context(monkeypatch, tmp_path / "data", pinger=RecordingPinger())
    with sqlite3.connect(made.layout.database) as connection:
        connection.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)")
        connection.executemany("INSERT INTO notes (text) VALUES (?)", [("x" * 100,)] * 500)
    made.state.database.integrity = Integrity.OK
    return made


def run(coroutine, timeout: float = 30.0):
    async def and_background() -> None:
        await coroutine
        await asyncio.sleep(0)  # let the background pings run

    return asyncio.run(asyncio.wait_for(and_background(), timeout))


def test_each_scheduled_backup_pings_and_lands_in_the_history(ctx):
    keeper = BackupKeeper(ctx.layout, keep=TEST_RETENTION, min_free_bytes=0, app_version="t")
    jobs = BackupJobs(ctx, keeper)
    run(jobs.scheduled())
    assert ctx.events.pinger.pings == [True, True, True]  # type: ignore[union-attr]
    runs = ctx.state.history.backup_runs(ctx.clock.time())
    assert sorted(p.tier for p in runs) == ["daily", "hourly", "weekly"]
    assert all(p.size_bytes > 50_000 and p.duration_s > 0 for p in runs)
    newest = ctx.state.backups.newest["hourly"]
    assert newest is not None and newest.duration_s > 0
    run(jobs.scheduled())  # nothing due: no ping, nothing doubles in the history
    assert len(ctx.events.pinger.pings) == 3  # type: ignore[union-attr]
    assert len(ctx.state.history.backup_runs(ctx.clock.time())) == 3


def test_a_failed_scheduled_backup_pings_fail_and_is_counted_per_tier(ctx):
    jobs = BackupJobs(ctx, FullDiskKeeper())  # type: ignore[arg-type]
    run(jobs.scheduled())
    assert ctx.events.pinger.pings == [False, False, False]  # type: ignore[union-attr]
    assert ctx.state.backups.failures_total == {"hourly": 1, "daily": 1, "weekly": 1}
    ctx.clock.advance(60)  # the first retry
    run(jobs.scheduled())
    assert ctx.state.backups.failures_total["hourly"] == 2


def test_without_a_heartbeat_url_nothing_is_pinged(ctx):
    ctx.events.pinger = None
    run(BackupJobs(ctx, FullDiskKeeper()).scheduled())  # type: ignore[arg-type]
    assert ctx.state.backups.failures_total["hourly"] == 1
