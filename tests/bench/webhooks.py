"""Past one machine: updates per second and reply latency for SQLite polling (today), SQLite
webhooks (one instance), PostgreSQL polling, and PostgreSQL webhooks with 1, 2 and 4 instances, in one run.

Each run is real ``python -m bot`` processes against the fake Bot API (whose webhook delivery
stands for Telegram and a round-robin load balancer, up to 40 POSTs at once) over a fresh data
directory and a fresh database on one throwaway PostgreSQL server, with fsync and
synchronous_commit on (the tests' server runs with fsync off; here it would flatter PostgreSQL).
A burst of ``/remember`` commands from 50 chats is queued at once; updates/s counts until the
last reply, and latency is each update's queueing to its reply (so under a burst it is mostly
waiting in line). The rate limit is set out of the way.
"""

from __future__ import annotations

import contextlib
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from tests.bench.report import Table
from tests.fakes.telegram_api import FakeTelegramAPI
from tests.helpers import REPO, base_env, free_port, http_get, wait_until

UNLIMITED = {"RATE_LIMIT_BURST": "1000", "RATE_LIMIT_PER_MINUTE": "6000"}
SECRET = "bench-webhook-secret"
CHATS = 50
WARM_CHAT = 1


def pg_storage_ready() -> bool:
    """The bot's PostgreSQL storage is on the pgstore branch until merged."""
    return importlib.util.find_spec("bot.storage.server") is not None


@contextlib.contextmanager
def bots(
    root: Path, fake: FakeTelegramAPI, instances: int, database: str | None, webhook: bool
) -> Iterator[None]:
    procs: list[subprocess.Popen[bytes]] = []
    public = f"http://127.0.0.1:{free_port()}/telegram"
    routes = []
    try:
        for k in range(instances):
            data_dir = root / f"i{k}"
            env = base_env(data_dir, free_port(), TELEGRAM_BOT_TOKEN=fake.token)
            env.update(TELEGRAM_API_URL=fake.base_url, LOG_LEVEL="WARNING", **UNLIMITED)
            if database is not None:
                env["DATABASE_URL"] = database
            port = free_port()
            if webhook:
                env.update(
                    TELEGRAM_WEBHOOK_URL=public,
                    TELEGRAM_WEBHOOK_SECRET=SECRET,
                    WEBHOOK_HOST="127.0.0.1",
                    WEBHOOK_PORT=str(port),
                )
                routes.append(f"http://127.0.0.1:{port}/telegram")
            log = (root / f"bot{k}.log").open("ab")
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "bot"],
                    cwd=REPO,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )
            )
            heartbeat = data_dir / "run" / "bot.heartbeat"
            wait_until(lambda h=heartbeat: h.exists(), 60, what="the bot to start")
            if webhook:
                wait_until(
                    lambda p=port: _healthy(p) and fake.webhook.url == public,
                    60,
                    what="the webhook",
                )
        if webhook:
            fake.webhook.route(routes)
        for k in range(max(1, instances)):  # warm every instance: the first reply loads code
            fake.send_text(WARM_CHAT + k, "/help")
        wait_until(lambda: len(fake.sent()) >= max(1, instances), 60, what="warm-up replies")
        yield
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def _healthy(port: int) -> bool:
    try:
        return http_get(f"http://127.0.0.1:{port}/health", timeout=2)[0] == 200
    except OSError:
        return False


def measure(
    root: Path, instances: int, database: str | None, webhook: bool, updates: int
) -> tuple[float, list[float]]:
    """(updates/s, latencies in seconds) of one burst."""
    with FakeTelegramAPI() as fake, bots(root, fake, instances, database, webhook):
        before = len(fake.sent())
        asked: dict[int, list[float]] = {}
        started = time.monotonic()
        for n in range(updates):
            chat = 1000 + n % CHATS
            asked.setdefault(chat, []).append(time.monotonic())
            fake.send_text(chat, f"/remember note {n}")
        try:
            wait_until(lambda: len(fake.sent()) - before >= updates, 900, what="every reply")
        except AssertionError as error:
            raise AssertionError(_stalled(root, fake, before, updates)) from error
        elapsed = max(r["at"] for r in fake.sent()) - started
        latencies = []
        for chat, times in asked.items():
            replies = sorted(r["at"] for r in fake.sent(chat))
            latencies.extend(reply - ask for ask, reply in zip(times, replies, strict=True))
    return updates / elapsed, latencies


def _stalled(root: Path, fake: FakeTelegramAPI, before: int, updates: int) -> str:
    """What the fake Bot API saw when the replies stopped, and where the bots' logs are kept."""
    kept = Path(tempfile.mkdtemp(prefix="bench-webhooks-stalled-"))
    for log in root.glob("bot*.log"):
        (kept / log.name).write_bytes(log.read_bytes())
    acknowledged = len(fake.webhook.acknowledged()) if fake.webhook.active else "–"
    return (
        f"replies stopped at {len(fake.sent()) - before} of {updates}; pending updates "
        f"{fake.pending_updates}, acknowledged webhook POSTs {acknowledged}, failed "
        f"getUpdates {fake.failed_get_updates}; the bots' logs are kept in {kept}"
    )


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(quick: bool) -> list[Table]:
    from tests.pg import postgres_server

    updates = 300 if quick else 2000
    repeats = 1 if quick else 2
    table = Table(
        f"Updates per second and latency, {updates} /remember from {CHATS} chats at once",
        ["mode", "instances", "updates/s", "p50 latency (ms)", "p99 latency (ms)"],
    )
    modes: list[tuple[str, int, bool, bool]] = [
        ("SQLite polling", 1, False, False),
        ("SQLite webhooks", 1, False, True),
    ]
    pg_modes = [
        ("PostgreSQL polling", 1, True, False),
        ("PostgreSQL webhooks", 1, True, True),
        ("PostgreSQL webhooks", 2, True, True),
        ("PostgreSQL webhooks", 4, True, True),
    ]
    ready = pg_storage_ready()
    if ready:
        modes += pg_modes
    else:
        table.notes.append(
            "PostgreSQL rows not measured: the bot's PostgreSQL storage (pgstore) is not merged."
        )
    measured: dict[tuple[str, int], tuple[list[float], list[float]]] = {}
    with (
        tempfile.TemporaryDirectory(prefix="bench-webhooks-") as tmp,
        postgres_server() if ready else contextlib.nullcontext() as server,
    ):
        if server is not None:
            import psycopg

            with psycopg.connect(server.url(), autocommit=True) as conn:
                conn.execute("ALTER SYSTEM SET fsync = on")
                conn.execute("SELECT pg_reload_conf()")
        scratch = Path(tmp)
        run_number = 0
        for _ in range(repeats):  # interleaved: the machine's load falls on every mode alike
            for label, instances, on_pg, webhook in modes:
                run_number += 1
                folder = scratch / f"run-{run_number}"
                folder.mkdir()
                database = server.url(server.create_database()) if on_pg and server else None
                try:
                    rate, latencies = measure(folder, instances, database, webhook, updates)
                except AssertionError as error:
                    raise AssertionError(f"{label} ×{instances}: {error}") from error
                rates, lats = measured.setdefault((label, instances), ([], []))
                rates.append(rate)
                lats.extend(latencies)
    for (label, instances), (rates, lats) in measured.items():
        table.add(
            label,
            instances,
            statistics.median(rates),
            1000 * p(lats, 0.5),
            1000 * p(lats, 0.99),
        )
    table.notes.append(
        f"Median of {repeats} runs (updates/s); latency percentiles over all runs. On this "
        "machine the instances share its 2 cores with PostgreSQL and the fake Bot API."
    )
    return [table]
