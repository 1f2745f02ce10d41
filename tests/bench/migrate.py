"""``python -m watchdog migrate`` timed, whole processes, against a throwaway PostgreSQL server
(``tests/pg.py``): SQLite → PostgreSQL (snapshot, COPY batches, identities, verification) and
back (PostgreSQL → a new proven SQLite file in the catalogue), for a bot database of 100 MB and
1 GB (1 GB in the full run only), a fresh target database per run, n runs each.

The databases are the bot's own (``tests/dbgen.create_bot``: schema, FTS5 triggers, messages
with realistic text). Everything lives in a temporary folder; every process is bounded.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests import dbgen
from tests.bench.report import Table
from tests.helpers import REPO, base_env, free_port
from tests.pg import postgres_server

MIB = 1024 * 1024
SIZES, SIZES_QUICK = (100 * MIB, 1024 * MIB), (5 * MIB,)
RUNS, RUNS_QUICK = 3, 1
TIMEOUT = 3600


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _timed(argv: list[str], env: dict[str, str]) -> float:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "watchdog", *argv],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    if done.returncode != 0:
        raise RuntimeError(f"migrate {argv[0]} failed: {done.stderr.strip()}")
    return time.monotonic() - started


def run(quick: bool) -> list[Table]:
    table = Table(
        "`python -m watchdog migrate`, whole process, this machine's PostgreSQL 15 (fsync off)",
        ["database", "rows", "direction", "runs", "seconds (median)", "min", "max", "MB/s"],
    )
    runs = RUNS_QUICK if quick else RUNS
    with tempfile.TemporaryDirectory(prefix="bench-migrate-") as work, postgres_server() as pg:
        root = Path(work)
        for size in SIZES_QUICK if quick else SIZES:
            label = f"{size // MIB} MB"
            data = root / "data"
            shutil.rmtree(data, ignore_errors=True)
            data.mkdir()
            _say(f"migrate: {label}: making the bot's database …")
            dbgen.create_bot(data / "erixcast.db", size)
            rows = _rows(data / "erixcast.db")
            env = base_env(data, free_port())
            forward: list[float] = []
            backward: list[float] = []
            for n in range(runs):
                url = pg.url(pg.create_database())
                _say(f"migrate: {label}: run {n + 1}/{runs} to PostgreSQL …")
                forward.append(_timed(["migrate", "--to", url], env))
                back = root / f"back-{n}.db"
                _say(f"migrate: {label}: run {n + 1}/{runs} back to SQLite …")
                backward.append(_timed(["migrate", "--from", url, "--to-sqlite", str(back)], env))
                back.unlink()
                shutil.rmtree(data / "backups", ignore_errors=True)
            for direction, times in (
                ("SQLite → PostgreSQL", forward),
                ("PostgreSQL → SQLite", backward),
            ):
                median = statistics.median(times)
                table.add(
                    label,
                    rows,
                    direction,
                    len(times),
                    median,
                    min(times),
                    max(times),
                    size / MIB / median,
                )
    table.notes.append(
        "Each run: a new empty target; to PostgreSQL = snapshot (online backup) + integrity_check "
        "+ COPY in 20,000-row batches each committed with its progress record + identities + "
        "ANALYZE + verification; back = one REPEATABLE READ read into a new file (FTS5 filled by "
        "its triggers) + verification + schema proof + integrity_check + taking it into the "
        "catalogue (a second online copy)."
    )
    return [table]


def _rows(path: Path) -> int:
    import sqlite3
    from contextlib import closing

    from conf.schema import TABLES

    with closing(sqlite3.connect(path)) as conn:
        return sum(conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in TABLES)
