"""HTTP latency of the watchdog's ``/health``, ``/metrics`` and ``/`` (the status page): 200
requests/s for 10 s from a second process (``http_load``, open loop), against a real
``python -m watchdog run`` over a 1 GB database (``--quick``: 20 MB, 3 s; ``HTTP_BENCH_MB``
sets another size), idle and while the watchdog itself takes a backup (``POST /backup`` on its
admin API: the snapshot is made by a worker process at nice +10, ``watchdog.data.maker``, while a
thread of the watchdog waits for it). Target: p99 under 10 ms in all six.

Before measuring, the watchdog's start-up work is let finish (the first hourly, daily and weekly
backups, the deploy copy's proof and the first restore drill); ``INTEGRITY_CHECK_EVERY`` is a
day, so no check runs during the idle windows. Also measured in-process: rendering ``/`` with a full week of history
(the live watchdog has only a few points to draw).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tests import dbgen
from tests.bench.backup import _grow
from tests.bench.machine import MachineSample, MachineWindow
from tests.bench.report import Table
from tests.helpers import free_port

MB = 1_048_576
REPO = Path(__file__).resolve().parents[2]
FULL_SIZE, QUICK_SIZE = 1024 * MB, 20 * MB
DIRECT_LIMIT = 100 * MB
RATE = 200.0
FULL_SECONDS, QUICK_SECONDS = 10.0, 3.0
ENDPOINTS = ("/health", "/metrics", "/")
TARGET_P99_MS = 10.0
START_TIMEOUT = 900.0
"""Generous: at 1 GB the start-up's three backups and drill take minutes on this machine."""
SETTLED_TIERS = ("hourly", "daily", "weekly", "deploy")
"""Backups the start-up takes before measuring. The deploy copy (a first run) is staged at start
and proven later, under the data lock: measured before it, a window "during a backup" fell on
the proof (the manual backup waiting for the lock), not on the backup."""


@dataclass(frozen=True)
class LoopLagSeries:
    """The watchdog's loop-lag series (``runtime.pauses.LoopLag``) at one moment."""

    stalls: float
    longest: float
    buckets: tuple[tuple[float, float], ...]
    """(upper bound, cumulative count)."""

    @classmethod
    def read(cls, base: str) -> LoopLagSeries | None:
        from prometheus_client.parser import text_string_to_metric_families

        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"{base}/metrics", timeout=30) as answer:
            text = answer.read().decode()
        families = {f.name: f for f in text_string_to_metric_families(text)}
        if "erixcast_watchdog_loop_stalls" not in families:
            return None
        buckets = tuple(
            (float(sample.labels["le"]), sample.value)
            for sample in families["erixcast_watchdog_loop_lag_seconds"].samples
            if sample.name.endswith("_bucket")
        )
        return cls(
            families["erixcast_watchdog_loop_stalls"].samples[0].value,
            families["erixcast_watchdog_loop_lag_max_seconds"].samples[0].value,
            buckets,
        )


@dataclass(frozen=True)
class LoopReading:
    stalls: int
    longest_ms: float
    exact: bool
    """False: no wake in the window was the watchdog's latest ever; ``longest_ms`` is then the
    upper bound of the highest bucket the window reached."""

    @classmethod
    def between(cls, before: LoopLagSeries, after: LoopLagSeries) -> LoopReading:
        stalls = int(after.stalls - before.stalls)
        if after.longest > before.longest:
            return cls(stalls, after.longest * 1000, True)
        # Cumulative buckets: the lowest bound that holds every wake of the window bounds it.
        rose = [
            (b, count - earlier)
            for (b, count), (_, earlier) in zip(after.buckets, before.buckets, strict=True)
        ]
        total = rose[-1][1]
        bound = min((b for b, risen in rose if risen == total), default=float("inf"))
        return cls(stalls, bound * 1000, False)

    def cell(self) -> str:
        longest = f"{self.longest_ms:.0f}" if self.exact else f"≤ {self.longest_ms:.0f}"
        return f"{self.stalls} (longest {longest} ms)"


@dataclass
class Run:
    endpoint: str
    while_: str
    latencies: list[float]
    errors: list[str]
    rate: float
    sent: int
    backup_throughout: bool | None = None
    loop: LoopReading | None = None
    """What the watchdog's loop-lag probe saw during the window (None: a watchdog without it)."""
    machine: MachineWindow | None = None

    def quantile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


CACHE = Path(tempfile.gettempdir()) / "erixcast-bench-cache"


def _cached_database(size: int) -> Path:
    """Where the generated database of ``size`` is kept, named by the generator's code (a
    change of it generates again)."""
    code = b"".join(
        Path(module.__file__ or "").read_bytes()
        for module in (dbgen, sys.modules[_grow.__module__])
    )
    return CACHE / f"http-{size // MB}mb-{hashlib.sha256(code).hexdigest()[:12]}.db"


def _label(size: int) -> str:
    return f"{size // 1024 // MB} GB" if size >= 1024 * MB else f"{size // MB} MB"


def _get(url: str, timeout: float = 5.0) -> dict:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=timeout) as answer:
        return json.loads(answer.read())


class _Watchdog:
    def __init__(self, work: Path, size: int) -> None:
        self.work = work
        self.data = work / "data"
        self.data.mkdir(parents=True)
        self.database = self.data / "erixcast.db"
        self.size = size
        self.process: subprocess.Popen[bytes] | None = None
        self.port = free_port()

    def generate(self) -> float:
        """The database: a copy of the one generated before for this size and generator (kept
        in ``CACHE``: at 1 GB the generation takes minutes), else generated and kept."""
        started = time.monotonic()
        cached = _cached_database(self.size)
        if not cached.exists():
            cached.parent.mkdir(parents=True, exist_ok=True)
            making = cached.with_name(f".{cached.name}.{os.getpid()}")
            dbgen.create(making, min(self.size, DIRECT_LIMIT))
            if self.size > DIRECT_LIMIT:
                _grow(making, self.size)
            connection = sqlite3.connect(making)
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            connection.execute("PRAGMA journal_mode=DELETE")  # one file: copied whole
            connection.close()
            os.replace(making, cached)
        shutil.copyfile(cached, self.database)
        connection = sqlite3.connect(self.database)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.close()
        return time.monotonic() - started

    def start(self) -> float:
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
            DATA_DIR=str(self.data),
            HOST="127.0.0.1",
            PORT=str(self.port),
            BACKUP_MIN_FREE_MB="0",
            INTEGRITY_CHECK_EVERY="1d",
        )
        log = (self.work / "watchdog.log").open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "watchdog", "run"],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        started = time.monotonic()
        deadline = started + START_TIMEOUT
        while time.monotonic() < deadline:  # the start-up's backups and drill, then quiet
            if self.process.poll() is not None:
                raise RuntimeError(f"the watchdog exited: {self.log_tail()}")
            try:
                health = _get(f"{self.base}/health")
            except OSError:
                health = None
            if health is not None:
                tiers = health["backups"]["tiers"]
                if all(tiers.get(t) for t in SETTLED_TIERS) and health["backups"]["drill"].get(
                    "last_at"
                ):
                    return time.monotonic() - started
            time.sleep(0.5)
        raise RuntimeError(f"the watchdog did not settle in {START_TIMEOUT} s: {self.log_tail()}")

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self) -> str:
        return (self.work / "watchdog.log").read_text(errors="replace")[-2000:]

    def backup_in_the_watchdog(self) -> threading.Thread:
        """A manual backup taken by the running watchdog (its admin API), in a thread."""
        admin = json.loads((self.data / "run" / "admin.json").read_text())
        request = urllib.request.Request(
            f"{admin['url']}/backup",
            data=b"{}",
            headers={"Authorization": f"Bearer {admin['secret']}"},
            method="POST",
        )
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

        def go() -> None:
            with opener.open(request, timeout=600) as answer:
                answer.read()

        thread = threading.Thread(target=go, daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def _load(url: str, seconds: float) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "tests.bench.http_load", url, str(RATE), str(seconds)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=seconds + 120,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the load generator failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _loop(watchdog: _Watchdog, before: LoopLagSeries | None) -> LoopReading | None:
    after = LoopLagSeries.read(watchdog.base)
    return LoopReading.between(before, after) if before and after else None


def _render_full_week() -> tuple[float, float, int]:
    """Seconds to render / in-process with a week of history: median, p99, page bytes."""
    from tests.unit.test_web_exposure import fake_watchdog
    from watchdog.rules.history import SIZE_STEP, WINDOW, BackupPoint
    from watchdog.web.public import status_view
    from watchdog.web.status_page import ChartCache, render

    service = fake_watchdog(None)
    now = service.clock.time()
    history = service.state.history
    at = now - WINDOW + 1
    while at < now:
        history.note_size(at, int(50 * MB + (at - now + WINDOW) * 10))
        at += SIZE_STEP
    points = [
        BackupPoint(now - hours * 3600, f"h{hours}", "hourly", 50 * MB, 1.5) for hours in range(168)
    ]
    points += [BackupPoint(now - d * 86400 - 60, f"d{d}", "daily", 50 * MB, 2.0) for d in range(7)]
    history.note_backups(points, now)
    times, page = [], ""
    cache = ChartCache()
    for number in range(200):
        if number % 20 == 0:  # the history changes: the charts are drawn again
            history.note_size(now, 60 * MB + number)
        started = time.perf_counter()
        page = render(status_view(service), cache)
        times.append(time.perf_counter() - started)
    times.sort()
    return statistics.median(times), times[int(0.99 * len(times))], len(page.encode())


def run(quick: bool) -> list[Table]:
    size = QUICK_SIZE if quick else FULL_SIZE
    if os.environ.get("HTTP_BENCH_MB"):
        size = int(os.environ["HTTP_BENCH_MB"]) * MB
    seconds = QUICK_SECONDS if quick else FULL_SECONDS
    work = Path(tempfile.mkdtemp(prefix="erixcast-bench-http-", dir="/tmp"))
    watchdog = _Watchdog(work, size)
    runs: list[Run] = []
    try:
        print(
            f"[http bench] a {_label(size)} database (generated, or the one kept) …",
            file=sys.stderr,
            flush=True,
        )
        generate_s = watchdog.generate()
        print("[http bench] starting the watchdog …", file=sys.stderr, flush=True)
        settle_s = watchdog.start()
        for endpoint in ENDPOINTS:
            print(f"[http bench] {endpoint} idle …", file=sys.stderr, flush=True)
            before, machine = LoopLagSeries.read(watchdog.base), MachineSample.now()
            result = _load(watchdog.base + endpoint, seconds)
            window = MachineWindow(machine, MachineSample.now())
            runs.append(
                Run(endpoint, "idle", **result, loop=_loop(watchdog, before), machine=window)
            )
        for endpoint in ENDPOINTS:
            print(f"[http bench] {endpoint} during a backup …", file=sys.stderr, flush=True)
            backup = watchdog.backup_in_the_watchdog()
            time.sleep(0.3)  # let the backup begin: the window must fall inside it
            before, machine = LoopLagSeries.read(watchdog.base), MachineSample.now()
            result = _load(watchdog.base + endpoint, seconds)
            window = MachineWindow(machine, MachineSample.now())
            throughout = backup.is_alive()
            loop = _loop(watchdog, before)
            runs.append(
                Run(
                    endpoint,
                    "during a backup",
                    **result,
                    backup_throughout=throughout,
                    loop=loop,
                    machine=window,
                )
            )
            backup.join(600)
    finally:
        watchdog.stop()
        shutil.rmtree(work, ignore_errors=True)
    median, p99, page_bytes = _render_full_week()
    return [_table(runs, size, seconds, generate_s, settle_s, median, p99, page_bytes)]


def _table(
    runs: list[Run],
    size: int,
    seconds: float,
    generate_s: float,
    settle_s: float,
    render_median: float,
    render_p99: float,
    page_bytes: int,
) -> Table:
    table = Table(
        f"HTTP latency at {RATE:.0f} requests/s for {seconds:.0f} s ({_label(size)} database)",
        [
            "endpoint",
            "while",
            "requests",
            "rate achieved",
            "p50 (ms)",
            "p99 (ms)",
            "max (ms)",
            "errors",
            "backup ran throughout",
            "loop stalls > 20 ms",
            "the machine meanwhile",
            f"p99 < {TARGET_P99_MS:.0f} ms",
        ],
    )
    for one in runs:
        p99 = one.quantile(0.99)
        table.add(
            one.endpoint,
            one.while_,
            len(one.latencies),
            one.rate,
            one.quantile(0.5),
            p99,
            max(one.latencies, default=0.0) * 1000,
            len(one.errors),
            "-" if one.backup_throughout is None else ("yes" if one.backup_throughout else "no"),
            "-" if one.loop is None else one.loop.cell(),
            "-" if one.machine is None else one.machine.cell(),
            "met" if p99 < TARGET_P99_MS else "missed",
        )
    table.notes.append(
        "Load from a second process (tests/bench/http_load.py): open loop, keep-alive, each "
        "latency from the moment the request was due to the last byte. During a backup: a manual "
        "backup taken by the running watchdog itself (its admin API): the copy, integrity_check, "
        "sha256 and row counts in a worker process at nice +10 (watchdog.data.maker), a thread "
        "of the watchdog waiting for it. "
        f"Database ready in {generate_s:.0f} s (generated, or a copy of the one kept in "
        f"{CACHE}); the watchdog's start-up work (first hourly, daily, weekly backups, the "
        f"deploy copy's proof, the drill) took {settle_s:.0f} s before measuring. "
        f"Rendering / in-process with a full week of history (1,008 size samples, 175 backups; "
        f"the charts redrawn at every 20th request, cached between): "
        f"median {render_median * 1000:.2f} ms, p99 {render_p99 * 1000:.2f} ms, "
        f"{page_bytes / 1024:.0f} KB. Machine: {os.cpu_count()} CPUs, shared; "
        "the machine meanwhile: CPU time its hypervisor gave to others (steal, /proc/stat) and "
        "the kernel's stall totals (/proc/pressure, some: time at least one task waited for a "
        "CPU, for I/O), over the window."
    )
    return table
