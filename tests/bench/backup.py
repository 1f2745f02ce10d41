"""The backup benchmark of issue 3: what a verified backup costs, beside ``cp`` and ``.backup``.

For each generated bot-like database (100 MB and 1 GB; ``--quick``: 5 MB and 20 MB), all in one
run so the numbers compare side by side:

1. time to copy it: ``cp`` (after a checkpoint, so the ``-wal`` is empty), the sqlite3 shell's
   ``.backup``, our snapshot copy step alone (``_copy_online``), our whole backup+verify
   (``BackupKeeper.take``: copy, fsync, integrity_check, row counts, sha256, manifest, commit) and
   the weekly tier (the same plus zstd), with the compressed size;
2. the peak RSS of a watchdog process taking a backup (a child process, like the CLI);
3. a concurrent writer's commit latency (a thread here, the bot's PRAGMAs, one small row per
   transaction every 2 ms) with no backup running vs while a child process takes backups back to
   back.

Everything lives in a temporary folder under /tmp that is deleted at the end; every child process
has a timeout and is killed in a ``finally``.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from conf.layout import TIERS, DataLayout
from tests import dbgen
from tests.bench.report import Table
from watchdog.data.backups import BackupKeeper
from watchdog.data.fs import fsync_file
from watchdog.data.snapshot import _copy_online, integrity_problem, sha256_of

MB = 1_048_576
REPO = Path(__file__).resolve().parents[2]
DB_NAME = "erixcast.db"  # the default DATABASE_PATH below DATA_DIR

FULL_SIZES = (100 * MB, 1024 * MB)
QUICK_SIZES = (5 * MB, 20 * MB)
DIRECT_LIMIT = 128 * MB
"""Databases up to this size come straight from tests/dbgen; bigger ones grow a copy of the
largest one made so far with INSERT … SELECT (dbgen makes ~6 MB/s, too slow for 1 GB)."""

RUNS = 3
SLOW_RUNS_BIG = 1
BIG = 512 * MB
"""At or above this size the slow methods (backup+verify, weekly) run once instead of three times."""

WRITE_INTERVAL = 0.002
WINDOW_MIN_QUICK, WINDOW_MIN, WINDOW_MAX = 2.0, 5.0, 180.0
"""The writer's window with backups running lasts until one backup has finished and at least
WINDOW_MIN (quick: WINDOW_MIN_QUICK) seconds; the window with no backup then lasts as long."""
STEP_TIMEOUT = 900.0
"""The most any one copy, backup or child process may take before the benchmark gives up."""

RSS_TARGET_MB = 30.0
P99_FACTOR = 2.0

_SETUP = r"""
from conf.layout import DataLayout
from conf.settings import load_settings_or_exit
from watchdog.data.backups import BackupKeeper
from watchdog.version import app_version

# What `python -m watchdog backup` does (watchdog/cli/common.py), without importing the rest of
# the command line: the backup path is what is measured.
settings = load_settings_or_exit("watchdog")
layout = DataLayout.from_settings(settings)
layout.ensure()
keeper = BackupKeeper(
    layout,
    keep=settings.retention(),
    min_free_bytes=int(settings.backup_min_free_mb * 1_048_576),
    app_version=app_version(),
)
"""

_RSS_CHILD = r"""
import json, resource, sys, time
{SETUP}
def status(key):
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return 0

before = status("VmRSS")
try:  # reset the high-water mark to the current RSS, so the peak is the backup's own
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")
    reset = True
except OSError:
    reset = False
started = time.monotonic()
outcome = keeper.take(sys.argv[1], "benchmark (rss)", time.time())
seconds = time.monotonic() - started
maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
peak = status("VmHWM") if reset else maxrss
print(json.dumps({"before": before, "peak": peak, "maxrss": maxrss, "reset": reset,
                  "seconds": seconds, "file_size": outcome.backup.manifest.file_size}))
""".replace("{SETUP}", _SETUP)

_LOOP_CHILD = r"""
import sys, time
from pathlib import Path
from watchdog.data.snapshot import SnapshotError
{SETUP}
ready, stop = Path(sys.argv[1]), Path(sys.argv[2])
ready.write_text("ready")
while not stop.exists():
    started = time.monotonic()
    try:
        keeper.take("manual", "benchmark (writer latency)", time.time())
        print("ok", round(time.monotonic() - started, 3), flush=True)
    except SnapshotError as error:
        print("failed", error, flush=True)
""".replace("{SETUP}", _SETUP)


def run(quick: bool) -> list[Table]:
    sizes = QUICK_SIZES if quick else FULL_SIZES
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="erixcast-bench-backup-", dir="/tmp"))
    children: list[subprocess.Popen[bytes]] = []
    try:
        bench = _Bench(work, quick, children)
        results = [bench.one_size(size) for size in sizes]
        tables = [bench.copy_table(result) for result in results]
        tables += [bench.rss_table(results), bench.latency_table(results)]
        targets = bench.targets_table(results)
        targets.notes.append(
            f"Whole benchmark: {time.monotonic() - started:.0f} s, of which generating the "
            f"databases {sum(r.generate_s for r in results):.0f} s. Machine: {os.cpu_count()} CPUs, "
            f"SQLite {sqlite3.sqlite_version}, Python {sys.version.split()[0]}."
        )
        tables.append(targets)
        return tables
    finally:
        for child in children:
            _stop(child)
        shutil.rmtree(work, ignore_errors=True)


@dataclass
class Method:
    name: str
    seconds: list[float]
    output_bytes: int

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


@dataclass
class Latency:
    samples: list[float]
    backups_done: int = 0
    backups_failed: int = 0
    failures: list[str] = field(default_factory=list)

    def percentile(self, q: float) -> float:
        ordered = sorted(self.samples)
        return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


@dataclass
class SizeResult:
    label: str
    size_bytes: int
    rows: int
    generate_s: float
    grown: bool
    methods: dict[str, Method] = field(default_factory=dict)
    rss: dict[str, dict[str, float]] = field(default_factory=dict)
    window_s: float = 0.0
    idle: Latency | None = None
    busy: Latency | None = None


def _label(size: int) -> str:
    return f"{size // 1024 // MB} GB" if size >= 1024 * MB else f"{size // MB} MB"


class _Bench:
    def __init__(self, work: Path, quick: bool, children: list[subprocess.Popen[bytes]]) -> None:
        self.work = work
        self.quick = quick
        self.children = children
        self.largest: Path | None = None
        self.sqlite3 = shutil.which("sqlite3")

    # -- the database --------------------------------------------------------------------------

    def one_size(self, size: int) -> SizeResult:
        label = _label(size)
        root = self.work / label.replace(" ", "")
        layout = DataLayout(root=root / "data", database=root / "data" / DB_NAME)
        layout.ensure()
        print(f"[backup bench] {label}: generating …", file=sys.stderr, flush=True)
        started = time.monotonic()
        rows, grown = self._generate(layout.database, size)
        generate_s = time.monotonic() - started
        _checkpoint(layout.database)
        actual = layout.database.stat().st_size
        result = SizeResult(label, actual, rows, generate_s, grown)
        print(
            f"[backup bench] {label}: {actual / MB:.0f} MB, {rows} rows in {generate_s:.0f} s; "
            "copies …",
            file=sys.stderr,
            flush=True,
        )
        _read_through(layout.database)  # every method starts from a warm page cache
        self._copies(layout, result)
        print(f"[backup bench] {label}: memory …", file=sys.stderr, flush=True)
        for tier in ("manual", "weekly"):
            result.rss[tier] = self._rss(layout, tier)
        print(f"[backup bench] {label}: writer latency …", file=sys.stderr, flush=True)
        result.window_s, result.idle, result.busy = self._latency(layout)
        return result

    def _generate(self, path: Path, size: int) -> tuple[int, bool]:
        grown = size > DIRECT_LIMIT and self.largest is not None
        if grown:
            assert self.largest is not None
            shutil.copyfile(self.largest, path)
            rows = _grow(path, size)
        else:
            rows = dbgen.create(path, size)
        self.largest = path
        return rows, grown

    # -- 1. time to copy -----------------------------------------------------------------------

    def _copies(self, layout: DataLayout, result: SizeResult) -> None:
        source = layout.database
        out = self.work / "out.db"
        slow_runs = SLOW_RUNS_BIG if result.size_bytes >= BIG else RUNS
        deadline = _Deadline(STEP_TIMEOUT)

        def clear_out() -> None:
            for path in (out, Path(f"{out}-wal"), Path(f"{out}-shm"), Path(f"{out}-journal")):
                path.unlink(missing_ok=True)

        def cp() -> int:
            subprocess.run(
                ["cp", "--reflink=never", str(source), str(out)],
                check=True,
                timeout=STEP_TIMEOUT,
                capture_output=True,
            )
            return out.stat().st_size

        def cp_fsync() -> int:
            size = cp()
            fd = os.open(out, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            return size

        def shell_backup() -> int:
            assert self.sqlite3 is not None
            subprocess.run(
                [self.sqlite3, str(source), f'.backup "{out}"'],
                check=True,
                timeout=STEP_TIMEOUT,
                capture_output=True,
            )
            return out.stat().st_size

        def copy_online() -> int:
            _copy_online(source, out, deadline.proceed)
            return out.stat().st_size

        keeper = BackupKeeper(
            layout, keep=dict.fromkeys(TIERS, 100), min_free_bytes=0, app_version="bench"
        )

        def take(tier: str) -> Callable[[], int]:
            def go() -> int:
                outcome = keeper.take(
                    tier, "benchmark", time.time(), proceed=_Deadline(STEP_TIMEOUT).proceed
                )
                assert outcome.backup is not None
                return outcome.backup.manifest.file_size

            return go

        def clear_backups() -> None:
            shutil.rmtree(layout.backups, ignore_errors=True)

        def with_copy() -> None:
            clear_out()
            _copy_online(source, out, deadline.proceed)
            fsync_file(out)

        def integrity() -> int:
            problem = integrity_problem(out, deadline.proceed)
            if problem:
                raise RuntimeError(f"the copy failed integrity_check: {problem}")
            return out.stat().st_size

        def digest() -> int:
            sha256_of(out, deadline.proceed)
            return out.stat().st_size

        plan: list[tuple[str, str, Callable[[], int], Callable[[], None], int]] = [
            ("cp", "`cp` (no fsync)", cp, clear_out, RUNS),
            ("cp_fsync", "`cp` + fsync", cp_fsync, clear_out, RUNS),
        ]
        if self.sqlite3:
            plan.append(("shell", "sqlite3 shell `.backup`", shell_backup, clear_out, RUNS))
        plan += [
            ("copy", "our snapshot copy step (`_copy_online`)", copy_online, clear_out, RUNS),
            ("take", "our backup + verify (`BackupKeeper.take`, manual)", take("manual"),
             clear_backups, slow_runs),
            ("integrity", "… of which `PRAGMA integrity_check` of the copy", integrity, with_copy,
             slow_runs),
            ("sha256", "… of which sha256 of the copy", digest, with_copy, slow_runs),
            ("weekly", "weekly backup (+ zstd level 6)", take("weekly"), clear_backups, slow_runs),
        ]  # fmt: skip
        for key, name, operation, prepare, runs in plan:
            seconds: list[float] = []
            output = 0
            for _ in range(runs):
                prepare()
                os.sync()  # no writeback of the previous run's pages during this one
                began = time.perf_counter()
                output = operation()
                seconds.append(time.perf_counter() - began)
            clear_out()
            clear_backups()
            result.methods[key] = Method(name, seconds, output)

    def copy_table(self, result: SizeResult) -> Table:
        table = Table(
            f"Backup of a {result.label} database",
            ["method", "runs", "seconds (median)", "MB/s", "× sqlite3 `.backup`", "output MB"],
        )
        shell = result.methods.get("shell")
        size_mb = result.size_bytes / MB
        for method in result.methods.values():
            ratio = f"{method.median / shell.median:.2f}×" if shell else "n/a"
            table.add(
                method.name,
                len(method.seconds),
                method.median,
                size_mb / method.median,
                ratio,
                method.output_bytes / MB,
            )
        weekly = result.methods["weekly"]
        table.notes.append(
            f"Database: {size_mb:.1f} MB, {result.rows:,} messages (generated in "
            f"{result.generate_s:.0f} s), checkpointed so the `-wal` is empty, and read once "
            "beforehand so every method starts from a warm page cache; `sync` before each run. "
            f"The weekly backup is {weekly.output_bytes / result.size_bytes:.1%} of the database "
            f"(zstd level 6, {result.size_bytes / max(weekly.output_bytes, 1):.1f}:1)."
        )
        if any(len(m.seconds) == 1 for m in result.methods.values()):
            table.notes.append(
                "At this size the backup + verify rows (with their integrity_check and sha256 "
                "parts) and the weekly row are one run each (they take long); the other rows are "
                "the median of three."
            )
        else:
            table.notes.append("Every row is the median of three runs.")
        table.notes.append(
            "MB/s is the database's size over the time. Backup + verify also fsyncs the copy, runs "
            "`PRAGMA integrity_check`, counts rows, hashes it (sha256) and commits it with its "
            "manifest; the sqlite3 shell's and our copy step's own commit syncs the copy too."
        )
        if result.grown:
            table.notes.append(
                "To generate it fast, this database is the smaller one grown by copying its "
                "messages (new ids, same text) with INSERT … SELECT, so message texts repeat; they "
                "repeat hundreds of MB apart, beyond zstd's window at level 6."
            )
        if not shell:
            table.notes.append("The sqlite3 shell is not installed here: its row is missing.")
        return table

    # -- 2. memory -----------------------------------------------------------------------------

    def _child_env(self, layout: DataLayout, **extra: str) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("TELEGRAM_", "BACKUP_", "RENDER", "STATS_", "ADMIN_"))
            and key not in ("DATA_DIR", "DATABASE_PATH", "PORT", "HOST", "ENV_FILE")
        }
        env.update(
            PYTHONPATH=str(REPO),
            PYTHONUNBUFFERED="1",
            ENV_FILE=os.devnull,
            DATA_DIR=str(layout.root),
            BACKUP_MIN_FREE_MB="0",
        )
        env.update(extra)
        return env

    def _rss(self, layout: DataLayout, tier: str) -> dict[str, float]:
        child = subprocess.Popen(
            [sys.executable, "-c", _RSS_CHILD, tier],
            cwd=REPO,
            env=self._child_env(layout),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.children.append(child)
        try:
            out, err = child.communicate(timeout=STEP_TIMEOUT)
        finally:
            _stop(child)
            shutil.rmtree(layout.backups, ignore_errors=True)
        if child.returncode != 0:
            raise RuntimeError(f"the RSS child failed ({child.returncode}): {err.decode()[-2000:]}")
        answer = json.loads(out.decode().strip().splitlines()[-1])
        return {
            "before": answer["before"] / MB,
            "peak": answer["peak"] / MB,
            "growth": (answer["peak"] - answer["before"]) / MB,
            "maxrss": answer["maxrss"] / MB,
            "seconds": answer["seconds"],
            "reset": float(answer["reset"]),
        }

    def rss_table(self, results: list[SizeResult]) -> Table:
        table = Table(
            "Watchdog memory while taking a backup (a child process)",
            ["database", "tier", "RSS before (MB)", "peak RSS (MB)", "growth (MB)", "seconds"],
        )
        for result in results:
            for tier, rss in result.rss.items():
                table.add(
                    result.label, tier, rss["before"], rss["peak"], rss["growth"], rss["seconds"]
                )
        reset = all(rss["reset"] for result in results for rss in result.rss.values())
        table.notes.append(
            "The child does what `python -m watchdog backup` does (settings, layout, "
            "`BackupKeeper`) without loading the rest of the watchdog, notes its RSS, then takes "
            "one backup with `BackupKeeper.take`; the peak is "
            + (
                "VmHWM after resetting it to the current RSS (`/proc/self/clear_refs`)."
                if reset
                else "`ru_maxrss` (the high-water mark could not be reset)."
            )
        )
        return table

    # -- 3. a concurrent writer ----------------------------------------------------------------

    def _latency(self, layout: DataLayout) -> tuple[float, Latency, Latency]:
        """The writer while backups run back to back (until one has finished, at least the
        minimum window), then the same length of time with no backup."""
        database = layout.database
        _writer(database, 0.5)  # warm-up: the first connection, the WAL file, the caches
        _checkpoint(database)
        os.sync()
        ready, stop, log = (self.work / name for name in ("ready", "stop", "loop.log"))
        for path in (ready, stop):
            path.unlink(missing_ok=True)
        with log.open("wb") as output:
            child = subprocess.Popen(
                [sys.executable, "-c", _LOOP_CHILD, str(ready), str(stop)],
                cwd=REPO,
                env=self._child_env(layout, BACKUP_KEEP_MANUAL="2"),
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        self.children.append(child)
        try:
            deadline = time.monotonic() + 60
            while not ready.exists():
                if child.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the backup loop did not start: {log.read_text()[-2000:]}")
                time.sleep(0.01)
            minimum = WINDOW_MIN_QUICK if self.quick else WINDOW_MIN

            def enough(elapsed: float) -> bool:
                if child.poll() is not None:
                    raise RuntimeError(f"the backup loop stopped: {log.read_text()[-2000:]}")
                return elapsed >= minimum and "ok " in log.read_text()

            samples, window = _writer(database, WINDOW_MAX, enough)
            stop.write_text("stop")
        finally:
            _stop(child)
        busy = Latency(samples)
        for line in log.read_text().splitlines():
            if line.startswith("ok "):
                busy.backups_done += 1
            elif line.startswith("failed "):
                busy.backups_failed += 1
                busy.failures.append(line)
        shutil.rmtree(layout.backups, ignore_errors=True)
        _checkpoint(database)
        os.sync()
        idle_samples, _ = _writer(database, window)
        _checkpoint(database)
        return window, Latency(idle_samples), busy

    def latency_table(self, results: list[SizeResult]) -> Table:
        table = Table(
            "A concurrent writer's commit latency, idle vs during backups",
            [
                "database",
                "while",
                "seconds",
                "commits",
                "p50 (ms)",
                "p99 (ms)",
                "max (ms)",
                "backups done",
            ],
        )
        for result in results:
            for name, latency in (
                ("no backup", result.idle),
                ("backups back to back", result.busy),
            ):
                assert latency is not None
                done = (
                    "-"
                    if latency is result.idle
                    else str(latency.backups_done)
                    + (f", {latency.backups_failed} failed" if latency.backups_failed else "")
                )
                table.add(
                    result.label,
                    name,
                    result.window_s,
                    len(latency.samples),
                    latency.percentile(0.5) * 1000,
                    latency.percentile(0.99) * 1000,
                    max(latency.samples) * 1000,
                    done,
                )
        table.notes.append(
            "The writer is a thread of the benchmark with the bot's PRAGMAs (journal_mode=WAL, "
            "synchronous=FULL, busy_timeout=5000); it inserts one small message per transaction, "
            f"one every {WRITE_INTERVAL * 1000:.0f} ms (or at once when behind), and times "
            "BEGIN … COMMIT. The backups run back to back in a child process (`BackupKeeper.take`, "
            "manual tier), so they do not share the writer's GIL; *backups done* counts those that "
            "finished inside the window (the one running at its end is cut off). "
            + "The window with backups lasts until one backup has finished (at least "
            f"{WINDOW_MIN_QUICK if self.quick else WINDOW_MIN:.0f} s), so it sees a whole backup; "
            "the window with no backup, measured after it, lasts as long."
        )
        failures = [f for r in results if r.busy for f in r.busy.failures]
        if failures:
            table.notes.append("Failed backups: " + "; ".join(failures[:3]))
        return table

    # -- targets -------------------------------------------------------------------------------

    def targets_table(self, results: list[SizeResult]) -> Table:
        table = Table(
            "Backup targets (issue 3)", ["target", "database", "measured", "limit", "result"]
        )

        def verdict(ok: bool) -> str:
            return "pass" if ok else "FAIL"

        for result in results:
            shell = result.methods.get("shell")
            copy = result.methods["copy"]
            if shell:
                ratio = copy.median / shell.median
                table.add(
                    "snapshot no slower than sqlite3 `.backup`",
                    result.label,
                    f"{copy.median:.3g} s vs {shell.median:.3g} s ({ratio:.2f}×)",
                    "≤ 1.00×",
                    verdict(ratio <= 1.0),
                )
            else:
                table.add(
                    "snapshot no slower than sqlite3 `.backup`",
                    result.label,
                    "sqlite3 not installed",
                    "≤ 1.00×",
                    "skipped",
                )
        for result in results:
            assert result.idle is not None and result.busy is not None
            idle, busy = result.idle.percentile(0.99), result.busy.percentile(0.99)
            table.add(
                "writer p99 during a backup ≤ 2× idle",
                result.label,
                f"{busy * 1000:.3g} ms vs {idle * 1000:.3g} ms ({busy / idle:.2f}×)",
                f"≤ {P99_FACTOR:.0f}×",
                verdict(busy <= P99_FACTOR * idle),
            )
        largest = results[-1]
        for tier, rss in largest.rss.items():
            table.add(
                f"peak RSS growth < {RSS_TARGET_MB:.0f} MB ({tier} backup)",
                largest.label,
                f"{rss['growth']:.1f} MB",
                f"< {RSS_TARGET_MB:.0f} MB",
                verdict(rss["growth"] < RSS_TARGET_MB),
            )
        if self.quick:
            table.notes.append(
                "Quick run: the sizes are small, so these verdicts only show that the benchmark "
                "works; the targets are meant for 100 MB and 1 GB."
            )
        return table


# -- helpers -----------------------------------------------------------------------------------


class _Deadline:
    def __init__(self, seconds: float) -> None:
        self.until = time.monotonic() + seconds

    def proceed(self) -> bool:
        return time.monotonic() < self.until


def _stop(child: subprocess.Popen[bytes]) -> None:
    if child.poll() is None:
        child.terminate()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(timeout=10)
    for stream in (child.stdout, child.stderr):
        if stream is not None:
            stream.close()


def _checkpoint(database: Path) -> None:
    connection = sqlite3.connect(database, timeout=30)
    try:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        connection.close()


def _read_through(path: Path) -> None:
    with path.open("rb") as handle:
        while handle.read(8 * MB):
            pass


def _grow(path: Path, target: int) -> int:
    """Grow a dbgen database to ``target`` bytes by copying its messages (new ids) in big batches,
    without a journal or syncs; it is back in WAL mode at the end. Returns the message rows."""
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode=DELETE")
        connection.execute("PRAGMA journal_mode=OFF")
        connection.execute("PRAGMA synchronous=OFF")
        connection.execute("PRAGMA cache_size=-1048576")  # 1 GB of page cache while growing
        rows = connection.execute("SELECT count(*) FROM messages").fetchone()[0]
        last_id = connection.execute("SELECT max(id) FROM messages").fetchone()[0]
        start = 0
        while (size := path.stat().st_size) < target:
            wanted = int((target - size) / (size / rows)) + 1000
            cursor = connection.execute(
                "INSERT INTO messages (user_id, chat_id, date, text) "
                "SELECT user_id, chat_id, date, text FROM messages WHERE id > ? AND id <= ? "
                "ORDER BY id LIMIT ?",
                (start, last_id, min(wanted, 1_000_000)),
            )
            rows += cursor.rowcount
            start = start + cursor.rowcount if start + cursor.rowcount < last_id else 0
        connection.execute("PRAGMA journal_mode=WAL")
        return int(rows)
    finally:
        connection.close()


def _writer(
    database: Path, seconds: float, enough: Callable[[float], bool] | None = None
) -> tuple[list[float], float]:
    """Commit latencies (seconds) of one small insert per transaction, every WRITE_INTERVAL,
    for ``seconds`` or until ``enough(elapsed)`` (asked here, every 50 ms); and how long it ran."""
    samples: list[float] = []
    failure: list[BaseException] = []
    done = threading.Event()

    def write() -> None:
        connection = sqlite3.connect(database, timeout=5, isolation_level=None)
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=FULL")
            connection.execute("PRAGMA busy_timeout=5000")
            tick = time.monotonic()
            end = tick + seconds
            number = 0
            while (now := time.monotonic()) < end and not done.is_set():
                if now < tick:
                    time.sleep(tick - now)
                number += 1
                began = time.perf_counter()
                connection.execute("BEGIN")
                connection.execute(
                    "INSERT INTO messages (user_id, chat_id, date, text) VALUES (?, ?, ?, ?)",
                    (number % 1000 + 1, number % 1000 + 1, "2026-11-28", f"bench write {number}"),
                )
                connection.execute("COMMIT")
                samples.append(time.perf_counter() - began)
                tick = max(tick + WRITE_INTERVAL, time.monotonic() - WRITE_INTERVAL)
        except BaseException as error:
            failure.append(error)
        finally:
            connection.close()

    thread = threading.Thread(target=write, name="bench-writer", daemon=True)
    started = time.monotonic()
    thread.start()
    try:
        while thread.is_alive():
            if enough is not None and enough(time.monotonic() - started):
                break
            thread.join(0.05)
    finally:
        done.set()
        thread.join(STEP_TIMEOUT)
    elapsed = time.monotonic() - started
    if thread.is_alive():
        raise RuntimeError("the writer thread hung")
    if failure:
        raise failure[0]
    return samples, elapsed
