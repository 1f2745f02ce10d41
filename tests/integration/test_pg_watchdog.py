"""The watchdog on a real PostgreSQL server (``tests/pg.py``): dumps proven by a restore into
a scratch database with equal counts, dumps that fail their proof set aside and not counted,
one clear line and a /health reason for a wrong password or a down server (never the
password), restores only into an empty database, and the offsite round trip of a dump."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from pyrage import x25519

from conf.layout import DataLayout
from conf.settings import load_settings
from tests.pg import PASSWORD, PostgresServer
from tests.runtime_context import runtime_context
from watchdog.data import pgdump
from watchdog.data import server as pg
from watchdog.data.backups import BackupKeeper
from watchdog.data.drill import run_drill
from watchdog.data.kinds import PostgresDatabase
from watchdog.data.snapshot import SnapshotError
from watchdog.offsite import OffsiteStore, cache_dir_for
from watchdog.rules.health import Thresholds, assess
from watchdog.rules.state import Integrity
from watchdog.runtime.context import RuntimeContext
from watchdog.runtime.server_guard import ServerGuard
from watchdog.runtime.supervision import BotSupervisor

pytestmark = pytest.mark.integration

KEEP = {"manual": 5, "daily": 5, "restart": 5}


def filled(postgres: PostgresServer, rows: int = 2000) -> str:
    name = postgres.create_database()
    with psycopg.connect(postgres.url(name), autocommit=True) as connection:
        connection.execute("CREATE EXTENSION unaccent")
        connection.execute("CREATE TABLE notes (id BIGSERIAL PRIMARY KEY, text TEXT NOT NULL)")
        connection.execute("CREATE TABLE users (id BIGINT PRIMARY KEY, name TEXT)")
        connection.execute(
            "INSERT INTO notes (text) SELECT 'note ' || g FROM generate_series(1, %s) g", (rows,)
        )
        connection.execute("INSERT INTO users SELECT g, 'u' || g FROM generate_series(1, 7) g")
    return name


def keeper_for(tmp_path: Path, kind: PostgresDatabase) -> BackupKeeper:
    root = tmp_path / "data"
    layout = DataLayout(root, root / "erixcast.db")
    layout.ensure()
    return BackupKeeper(layout, keep=KEEP, min_free_bytes=0, app_version="t", source=kind)


def _databases(postgres) -> set[str]:
    with psycopg.connect(postgres.url(), autocommit=True) as connection:
        return {row[0] for row in connection.execute("SELECT datname FROM pg_database")}


def _scratches(postgres) -> set[str]:
    return {name for name in _databases(postgres) if name.startswith("erixcast_verify_")}


def test_a_dump_is_proven_by_a_restore_into_scratch_with_equal_counts(postgres, tmp_path):
    name = filled(postgres)
    kind = PostgresDatabase(pg.Server.from_url(postgres.url(name)))
    keeper = keeper_for(tmp_path, kind)
    # One server serves this worker's tests: a scratch another test left (a killed drill, cleaned
    # at that watchdog's next start) is not this backup's.
    others = _scratches(postgres)
    outcome = keeper.take("manual", "test", time.time() - 60)
    assert outcome.backup is not None
    manifest = outcome.backup.manifest
    assert manifest.rows == {"notes": 2000, "users": 7}
    assert pgdump.is_dump(manifest) and manifest.file.endswith(".pgdump")
    assert "counts equal" in manifest.extra["proof"]
    assert outcome.backup.data_path.read_bytes()[:5] == b"PGDMP"
    assert [b.id for b in keeper.catalogue.scan()] == [manifest.id]
    # the scratch database is gone; the live one untouched
    assert not _scratches(postgres) - others and name in _databases(postgres)
    # unchanged data: the restart snapshot is skipped on the content's sha256
    again = keeper.take("restart", "bot exited", time.time(), skip_if_unchanged=True)
    assert again.backup is None and again.skipped and manifest.id in again.skipped
    with psycopg.connect(postgres.url(name), autocommit=True) as connection:
        connection.execute("UPDATE users SET name = 'changed' WHERE id = 1")
    changed = keeper.take("restart", "bot exited", time.time(), skip_if_unchanged=True)
    assert changed.backup is not None
    # the drill restores the newest of each tier into scratch and compares the counts
    results = run_drill(keeper.catalogue, tmp_path / "run", kind)
    assert len(results) == 2 and all(r.ok for r in results), results


def test_a_dump_that_does_not_restore_or_restores_other_counts_is_set_aside(postgres, tmp_path):
    name = filled(postgres, rows=300)
    kind = PostgresDatabase(pg.Server.from_url(postgres.url(name)))
    keeper = keeper_for(tmp_path, kind)
    dump_to = kind.dumper.dump_to

    def truncated(target: Path, snapshot: str, proceed) -> None:
        dump_to(target, snapshot, proceed)
        with target.open("r+b") as handle:
            handle.truncate(target.stat().st_size // 2)

    kind.dumper.dump_to = truncated
    with pytest.raises(SnapshotError) as failed:
        keeper.take("manual", "test", time.time())
    assert "not counted" in str(failed.value) and "pg_restore" in str(failed.value)
    assert keeper.catalogue.scan() == []
    kept = list(keeper.catalogue.tier_dir("manual").glob(".failed-*.pgdump"))
    assert len(kept) == 1
    assert "pg_restore" in json.loads(kept[0].with_suffix(".json").read_text())["failed"]

    kind.dumper.dump_to = dump_to
    restore_into = kind.dumper.restore_into

    def loses_a_row(dump: Path, target: pg.Server, proceed) -> None:
        restore_into(dump, target, proceed)
        with psycopg.connect(postgres.url(target.database), autocommit=True) as connection:
            connection.execute("DELETE FROM notes WHERE id = 1")

    kind.dumper.restore_into = loses_a_row
    with pytest.raises(SnapshotError) as differ:
        keeper.take("manual", "test", time.time())
    assert "notes: 300 dumped, 299 restored" in str(differ.value)
    assert keeper.catalogue.scan() == []
    assert len(list(keeper.catalogue.tier_dir("manual").glob(".failed-*.pgdump"))) == 1


def guard_on(tmp_path: Path, monkeypatch, url: str) -> tuple[ServerGuard, RuntimeContext]:
    kind = PostgresDatabase(pg.Server.from_url(url))
    ctx = runtime_context(monkeypatch, tmp_path / "data", kind=kind)
    bot = BotSupervisor(ctx, [sys.executable, "-c", "pass"])
    return ServerGuard(ctx, bot, kind), ctx


def health_of(ctx: RuntimeContext) -> dict:
    limits = Thresholds(80, 95, 60, 900)
    return assess(ctx.state, limits, ctx.clock.time()).document


@pytest.mark.parametrize("case", ["wrong password", "down server"])
def test_a_wrong_password_or_a_down_server_is_one_line_and_a_health_reason(
    postgres, tmp_path, monkeypatch, case
):
    name = postgres.create_database()
    secret = "not-the-password-4f1c"
    if case == "wrong password":
        url = postgres.url(name, password=secret)
    else:
        from tests.helpers import free_port

        url = f"postgresql://erixcast:{secret}@127.0.0.1:{free_port()}/{name}"
    guard, ctx = guard_on(tmp_path, monkeypatch, url)
    asyncio.run(guard.start_up())
    database = ctx.state.database
    assert database.integrity is Integrity.UNREACHABLE
    assert not guard.bot.launchable()
    detail = database.detail or ""
    assert "\n" not in detail and secret not in detail
    expected = "refused the user or password" if case == "wrong password" else "unreachable"
    assert expected in detail and f"/{name}" in detail
    health = health_of(ctx)
    assert health["status"] == "unhealthy"
    assert expected in health["checks"]["database"]["detail"]
    assert health["database"]["type"] == "postgresql"
    assert health["database"]["server"]["database"] == name
    assert secret not in json.dumps(health) and PASSWORD not in json.dumps(health)
    # the one backoff: not probed again at once, then again after the delay
    assert not guard.check_due()
    ctx.clock.mono += 2.5  # type: ignore[attr-defined]
    assert guard.check_due()


def test_a_reachable_server_shows_host_port_name_and_version_never_the_password(
    postgres, tmp_path, monkeypatch
):
    name = filled(postgres, rows=10)
    guard, ctx = guard_on(tmp_path, monkeypatch, postgres.url(name))
    asyncio.run(guard.start_up())
    assert ctx.state.database.integrity is Integrity.OK and guard.bot.launchable()
    health = health_of(ctx)
    server = health["database"]["server"]
    assert server["host"] == "127.0.0.1" and server["port"] == postgres.port
    assert server["database"] == name and server["version"].startswith("15")
    text = json.dumps(health)
    assert PASSWORD not in text and postgres.url(name) not in text


def run_restore(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ENV_FILE": os.devnull, "DATA_DIR": str(tmp_path / "data")}
    return subprocess.run(
        [sys.executable, "-m", "watchdog", "restore", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )


def test_restore_goes_into_an_empty_database_only(postgres, tmp_path):
    name = filled(postgres, rows=120)
    kind = PostgresDatabase(pg.Server.from_url(postgres.url(name)))
    backup = keeper_for(tmp_path, kind).take("manual", "test", time.time()).backup
    assert backup is not None
    refused = run_restore(tmp_path, backup.id, "--to", postgres.url(name))
    assert refused.returncode == 1
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "is not empty" in lines[0] and PASSWORD not in lines[0]
    empty = postgres.create_database()
    done = run_restore(tmp_path, "latest", "--to", postgres.url(empty))
    assert done.returncode == 0, done.stderr
    assert "counts equal" in done.stdout and PASSWORD not in done.stdout
    with psycopg.connect(postgres.url(empty)) as connection:
        restored = pg.count_rows(connection)
    assert restored == {"notes": 120, "users": 7}


def test_a_dump_goes_offsite_and_comes_back_as_a_dump(postgres, tmp_path):
    name = filled(postgres, rows=500)
    kind = PostgresDatabase(pg.Server.from_url(postgres.url(name)))
    keeper = keeper_for(tmp_path, kind)
    backup = keeper.take("daily", "test", time.time() - 60).backup
    assert backup is not None
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "--quiet", "--bare", str(remote)], check=True, timeout=30)
    identity = x25519.Identity.generate()
    store = OffsiteStore(
        str(remote),
        "db-backups",
        cache_dir_for(keeper.layout.root),
        token=None,
        age_identity=str(identity),
        allow_plaintext=False,
        keep=3,
        timeout=30.0,
        part_size=64 * 1024,
    )
    store.push(backup)
    listed = store.list()
    assert [entry.id for entry in listed] == [backup.id]
    target = tmp_path / "back.pgdump"
    manifest = store.fetch(backup.id, target)
    assert pgdump.is_dump(manifest) and manifest.rows == backup.manifest.rows
    assert target.read_bytes() == backup.data_path.read_bytes()
    empty = postgres.create_database()
    restored = run_restore(tmp_path, backup.id, "--to", postgres.url(empty))
    assert restored.returncode == 0, restored.stderr


def test_the_kind_is_chosen_from_database_url_in_one_place(postgres, tmp_path, monkeypatch):
    from watchdog.data.kinds import SqliteFile, database_kind

    monkeypatch.setenv("ENV_FILE", os.devnull)
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert isinstance(database_kind(load_settings()), SqliteFile)
    name = postgres.create_database()
    monkeypatch.setenv("DATABASE_URL", postgres.url(name))
    kind = database_kind(load_settings())
    assert isinstance(kind, PostgresDatabase) and kind.server.database == name
    assert pg.probe(kind.server).version_num >= 130000


def test_an_erasure_that_no_dump_holds_makes_a_dump_due_then_a_push(
    postgres, tmp_path, monkeypatch
):
    """On a server the record of erasures is the database's own table: until a dump holds a
    new row, a lost database restored from the newest dump would bring the user back."""
    from watchdog.runtime.jobs import BackupJobs
    from watchdog.runtime.maintenance import Maintenance

    url = postgres.url(filled(postgres))
    kind = PostgresDatabase(pg.Server.from_url(url))
    ctx = runtime_context(monkeypatch, tmp_path / "data", kind=kind)
    keep = {**KEEP, "hourly": 5}
    keeper = BackupKeeper(ctx.layout, keep=keep, min_free_bytes=0, app_version="t", source=kind)
    jobs = BackupJobs(ctx, keeper)

    asyncio.run(jobs.erasure_backup_if_due())
    assert keeper.catalogue.scan() == [], "no erasures table: nothing is due"
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(
            "CREATE TABLE erasures (user_id BIGINT NOT NULL, update_id BIGINT NOT NULL, "
            "erased_at TEXT NOT NULL, PRIMARY KEY (user_id, update_id))"
        )
        connection.execute("INSERT INTO erasures VALUES (7, 900, '2026-12-01T10:00:00+00:00')")
    asyncio.run(jobs.erasure_backup_if_due())
    [taken] = keeper.catalogue.scan()
    assert taken.tier == "hourly" and taken.manifest.extra["erasure_rows"] == "1"
    asyncio.run(jobs.erasure_backup_if_due())
    assert len(keeper.catalogue.scan()) == 1, "the newest dump holds every row: nothing due"

    # offsite: due off schedule while the newest dump offsite lacks the row
    assert Maintenance.erasures_not_offsite([taken], None)
    assert not Maintenance.erasures_not_offsite([taken], taken.id)
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("INSERT INTO erasures VALUES (8, 901, '2026-12-01T11:00:00+00:00')")
    ctx.clock.now += 60  # type: ignore[attr-defined]
    asyncio.run(jobs.erasure_backup_if_due())
    older, newer = keeper.catalogue.scan()
    assert newer.manifest.extra["erasure_rows"] == "2"
    assert Maintenance.erasures_not_offsite([older, newer], older.id)
