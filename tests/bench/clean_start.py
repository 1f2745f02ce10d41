"""Check once at start (issue 14), whole processes: start → the bot answering with a clean-stop
record (quick_check before launch) against without one (the full check first), interleaved, on
the same database. (``restore latest`` is timed against Litestream's in ``versus``. Its timing
against the code before check-once was dropped in session 25: that commit's restore refuses the
bot's schema of today, which has tables it did not know.)

Databases: the bot's own, made by its first start (schema, FTS5 triggers) and grown with
``tests/dbgen`` rows to the size (``recovery._fill_bot_database``). Everything lives in a
temporary folder; every wait is bounded; every process is killed in a ``finally``.
"""

from __future__ import annotations

import signal
import statistics
import time
from pathlib import Path

from conf.layout import TIERS
from tests.bench.recovery import (
    START_TIMEOUT,
    _checkpoint,
    _fill_bot_database,
    _first_start,
    _label,
    _remove_companions,
    _say,
    _Stack,
)
from tests.bench.report import Table
from tests.helpers import wait_until
from watchdog.data.backups import BackupKeeper
from watchdog.data.cleanstop import record_path
from watchdog.version import app_version

SIZES, SIZES_QUICK = (100 * 1024 * 1024, 1024 * 1024 * 1024), (5 * 1024 * 1024,)
RUNS, RUNS_QUICK = 3, 2


def run(quick: bool, work: Path) -> list[Table]:
    from tests.fakes.telegram_api import FakeTelegramAPI

    runs = RUNS_QUICK if quick else RUNS
    start = Table(
        "Start → the bot answering, with and without a clean-stop record (issue 14)",
        ["database", "start-up check", "runs", "start → answer (median s)", "min", "max"],
    )
    fake = FakeTelegramAPI()
    fake.start()
    stack = _Stack(work / "stack", fake)
    stack.env["SHUTDOWN_BUDGET"] = "1"  # no shutdown backup of the big file between runs
    try:
        (work / "stack").mkdir(parents=True)
        _first_start(stack)
        for size in SIZES_QUICK if quick else SIZES:
            label = _label(size)
            _say(f"check once: {label}: filling the bot's database …")
            _fill_bot_database(stack.layout.database, size)
            _checkpoint(stack.layout.database)
            _remove_companions(stack.layout.database)
            keeper = BackupKeeper(stack.layout, dict.fromkeys(TIERS, 50), 0, app_version())
            assert keeper.take("manual", "benchmark", time.time()).backup is not None
            _starts(stack, label, runs, start)
    finally:
        stack.kill()
        fake.stop()
    start.notes.append(
        "Without a record: the full integrity_check before launch (what every start did before). "
        "With one (left by the orderly stop before, matching size, mtime, inode, header change "
        "counter and -wal): quick_check before launch, the full check right after with the bot "
        "up. Same database, same build, interleaved."
    )
    return [start]


def _starts(stack: _Stack, label: str, runs: int, table: Table) -> None:
    times: dict[str, list[float]] = {"full first": [], "quick, full after": []}
    for number in range(runs):
        for kind in times:
            if kind == "full first":
                record_path(stack.layout).unlink(missing_ok=True)
            else:
                assert record_path(stack.layout).is_file(), "the stop before left a record"
            _say(f"check once: {label}: start ({kind}, run {number + 1}) …")
            uid = 800_000 + stack.starts
            sent = len(stack.fake.sent(uid))
            stack.fake.send_text(uid, "/start", first_name=f"Start{uid}")
            began = stack.start()
            try:
                stack.fake.wait_for_sent(uid, contains=f"Start{uid}", timeout=600, after=sent)
                times[kind].append(time.time() - began)
                wait_until(  # the full check done (no check owed), so the stop vouches for it
                    lambda: stack.health()["checks"]["database"]["detail"] == "integrity_check ok",
                    timeout=600,
                    interval=0.5,
                    what="the full check",
                )
                _stop(stack)
            finally:
                stack.kill()
    for kind, values in times.items():
        table.add(label, kind, len(values), statistics.median(values), min(values), max(values))


def _stop(stack: _Stack) -> None:
    assert stack.proc is not None
    stack.proc.popen.send_signal(signal.SIGTERM)
    stack.proc.wait(START_TIMEOUT)
    stack.proc = None
