"""Check once (issue 14), whole processes: ``python -m watchdog restore latest --yes`` with the
stack down, this branch against the commit before it (exported with ``git archive`` into the
work folder and run by the same interpreter, interleaved, n runs each); and start → the bot
answering with a clean-stop record (quick_check before launch) against without one (the full
check first), interleaved, on the same database.

Databases: the bot's own, made by its first start (schema, FTS5 triggers) and grown with
``tests/dbgen`` rows to the size (``recovery._fill_bot_database``). Everything lives in a
temporary folder; every wait is bounded; every process is killed in a ``finally``.
"""

from __future__ import annotations

import shutil
import signal
import statistics
import subprocess
import sys
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
from tests.helpers import REPO, wait_until
from watchdog.data.backups import BackupKeeper
from watchdog.data.cleanstop import record_path
from watchdog.version import app_version

BEFORE = "1fa8f3f"
"""The last commit of main before check-once: restore ran integrity_check twice."""
SIZES, SIZES_QUICK = (100 * 1024 * 1024, 1024 * 1024 * 1024), (5 * 1024 * 1024,)
RUNS, RUNS_QUICK = 3, 2


def run(quick: bool, work: Path) -> list[Table]:
    from tests.fakes.telegram_api import FakeTelegramAPI

    old = work / "before"
    old.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "archive", BEFORE], cwd=REPO, capture_output=True, check=True, timeout=120
    )
    subprocess.run(["tar", "-x", "-C", str(old)], input=archive.stdout, check=True, timeout=120)
    runs = RUNS_QUICK if quick else RUNS
    restore = Table(
        "`restore latest` with the stack down, whole process (check once, issue 14)",
        ["database", "code", "runs", "seconds (median)", "min", "max", "× before"],
    )
    start = Table(
        "Start → the bot answering, with and without a clean-stop record (issue 14)",
        ["database", "start-up check", "runs", "start → answer (median s)", "min", "max"],
    )
    fake = FakeTelegramAPI()
    fake.start()
    stack = _Stack(work / "stack", fake)
    stack.env["SHUTDOWN_BUDGET"] = "1"  # no shutdown backup of the big file between runs
    try:
        (work / "stack").mkdir()
        _first_start(stack)
        for size in SIZES_QUICK if quick else SIZES:
            label = _label(size)
            _say(f"check once: {label}: filling the bot's database …")
            _fill_bot_database(stack.layout.database, size)
            _checkpoint(stack.layout.database)
            _remove_companions(stack.layout.database)
            keeper = BackupKeeper(stack.layout, dict.fromkeys(TIERS, 50), 0, app_version())
            assert keeper.take("manual", "benchmark", time.time()).backup is not None
            _restores(stack, old, label, runs, restore)
            _starts(stack, label, runs, start)
    finally:
        stack.kill()
        fake.stop()
    restore.notes.append(
        f"Before: commit {BEFORE} (`verify_backup` then `prepare_backup`: two integrity_checks). "
        "After: the copy hashed as it is made, compared with the manifest's sha256 of the bytes "
        "its full check passed on, and the schema; the full check of the installed file runs "
        "at the next start, after the bot is back (quick_check before launch)."
    )
    start.notes.append(
        "Without a record: the full integrity_check before launch (what every start did before). "
        "With one (left by the orderly stop before, matching size, mtime, inode, header change "
        "counter and -wal): quick_check before launch, the full check right after with the bot "
        "up. Same database, same build, interleaved."
    )
    return [restore, start]


def _restores(stack: _Stack, old: Path, label: str, runs: int, table: Table) -> None:
    times: dict[str, list[float]] = {"before": [], "after": []}
    for number in range(runs):
        for code, tree in (("before", old), ("after", REPO)):
            _say(f"check once: {label}: restore latest ({code}, run {number + 1}) …")
            env = {**stack.env, "PYTHONPATH": str(tree)}
            began = time.monotonic()
            done = subprocess.run(
                [sys.executable, "-m", "watchdog", "restore", "latest", "--yes"],
                cwd=tree,
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
            )
            times[code].append(time.monotonic() - began)
            assert done.returncode == 0, done.stderr[-2000:]
            shutil.rmtree(stack.layout.quarantine, ignore_errors=True)
            record_path(stack.layout).unlink(missing_ok=True)
    before = statistics.median(times["before"])
    for code in ("before", "after"):
        values = times[code]
        median = statistics.median(values)
        table.add(label, code, len(values), median, min(values), max(values), median / before)


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
