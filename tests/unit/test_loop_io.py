"""Nothing the watchdog's event loop runs itself waits on the disk: the loop answers /health,
/metrics and / while a backup of a large database is written back by the kernel, and an fsync, a
directory walk or an SQLite connection taken on the loop's thread then holds every request for
tens to hundreds of milliseconds. The durable work goes to worker threads (``asyncio.to_thread``)
or to the snapshot's worker process.

Checked without timing: the calls that block on the disk are wrapped so that each call made on a
thread that is running an event loop is recorded (a worker thread runs none), then real
operations run on a real loop over a real SQLite file in a temporary DATA_DIR."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import traceback
from collections.abc import Callable
from typing import Any

import pytest

from conf.units import MIB
from tests import dbgen
from tests.runtime_context import runtime_context
from watchdog.data.backups import BackupKeeper
from watchdog.data.catalogue import Catalogue
from watchdog.rules.state import Integrity
from watchdog.runtime.context import RuntimeContext
from watchdog.runtime.jobs import BackupJobs
from watchdog.runtime.maintenance import Maintenance

BLOCKING = (
    (os, "fsync"),
    (os, "fdatasync"),
    (os, "listdir"),
    (os, "scandir"),
    (sqlite3, "connect"),
)
"""What waits on the disk (or walks it): a write made durable, a folder read, a database opened."""


def on_a_loop_thread() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


@pytest.fixture
def loop_io(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every blocking call made on an event loop's thread, with where it was made."""
    seen: list[str] = []

    def watched(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            if on_a_loop_thread():
                where = "".join(traceback.format_stack(limit=8)[:-1])
                seen.append(f"{name} on the loop's thread:\n{where}")
            return original(*args, **kwargs)

        return call

    for module, name in BLOCKING:
        monkeypatch.setattr(module, name, watched(name, getattr(module, name)))
    return seen


@pytest.fixture
def ctx(tmp_path, monkeypatch) -> RuntimeContext:
    made = runtime_context(monkeypatch, tmp_path / "data", env={"BACKUP_MIN_FREE_MB": "0"})
    dbgen.create(made.layout.database, 1 * MIB)
    made.state.database.integrity = Integrity.OK
    made.state.database.exists = True
    return made


def keeper_of(ctx: RuntimeContext) -> BackupKeeper:
    return BackupKeeper(
        ctx.layout,
        keep=ctx.settings.retention(),
        min_free_bytes=0,
        app_version="t",
        source=ctx.database,
    )


def run(coroutine: Any, timeout: float = 120.0) -> Any:
    return asyncio.run(asyncio.wait_for(coroutine, timeout))


def test_the_detector_sees_a_blocking_call_on_the_loop_and_not_in_a_worker_thread(loop_io, ctx):
    """The check below can fail: the same state write, made on the loop, is seen."""

    async def both() -> None:
        await asyncio.to_thread(ctx.remembered.update, drill_at=1.0)
        assert loop_io == []
        ctx.remembered.update(drill_at=2.0)

    run(both())
    assert loop_io and loop_io[0].startswith("fsync on the loop's thread")


def test_a_backup_its_completion_and_the_deploy_copy_do_no_disk_io_on_the_loop(loop_io, ctx):
    jobs = BackupJobs(ctx, keeper_of(ctx))

    async def backups() -> None:
        await jobs.deploy_snapshot()  # a first run: the deploy backup, the version remembered
        outcome = await jobs.backup("manual", "asked")
        assert outcome is not None and outcome.backup is not None
        await jobs.scheduled()  # every tier due: hourly, daily (compressed), weekly
        await jobs.refresh()

    run(backups())
    assert ctx.remembered.load().app_version is not None
    assert ctx.state.backups.count >= 4
    assert loop_io == [], "\n".join(loop_io)


def test_a_drill_and_the_journal_upkeep_do_no_disk_io_on_the_loop(loop_io, ctx):
    jobs = BackupJobs(ctx, keeper_of(ctx))
    maintenance = Maintenance(ctx, Catalogue(ctx.layout), None)

    async def upkeep() -> None:
        await jobs.backup("manual", "something to drill")
        loop_io.clear()  # the backup is the test above's
        await maintenance.tick()  # the journal read, the drill (due: none ran yet)

    run(upkeep())
    assert ctx.state.drill.last_at is not None and ctx.state.drill.results
    assert ctx.remembered.load().drill_at == ctx.state.drill.last_at
    assert loop_io == [], "\n".join(loop_io)


def test_health_metrics_and_the_status_page_do_no_disk_io_on_the_loop(loop_io):
    """The three endpoints the platform, Prometheus and people poll, served by the real app
    (its loop-lag probe running) over loopback HTTP."""
    from aiohttp.test_utils import TestClient, TestServer

    from tests.unit.test_web_exposure import fake_watchdog
    from watchdog.web.public import build_app

    async def polled() -> None:
        async with TestClient(TestServer(build_app(fake_watchdog(None)), host="127.0.0.1")) as c:
            for _ in range(3):
                for path in ("/health", "/metrics", "/"):
                    answer = await c.get(path)
                    assert answer.status in (200, 503), path
                    await answer.read()

    run(polled(), timeout=60)
    assert loop_io == [], "\n".join(loop_io)
