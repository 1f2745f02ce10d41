"""Backups against real SQLite files, a live writer, a killed process and a full disk."""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conf.layout import DataLayout
from tests import dbgen
from tests.helpers import TEST_RETENTION, base_env, free_port, get_json, tmpfs, wait_until
from watchdog.data.backups import BackupKeeper, BackupSkipped
from watchdog.data.catalogue import Catalogue
from watchdog.data.maker import make_snapshot
from watchdog.data.snapshot import SnapshotError, SnapshotRequest, decompress, verify_backup

KEEP = TEST_RETENTION


@pytest.fixture
def layout(tmp_path) -> DataLayout:
    layout = DataLayout(tmp_path / "data", tmp_path / "data" / "erixcast.db")
    layout.ensure()
    return layout


def keeper(layout: DataLayout, keep=KEEP, min_free: int = 0) -> BackupKeeper:
    return BackupKeeper(layout, keep=keep, min_free_bytes=min_free, app_version="test")


def rows_in(path: Path, table: str = "messages") -> int:
    with sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True) as connection:
        return int(connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_rows_still_in_the_wal_are_in_the_backup(layout):
    dbgen.create(layout.database, 200_000)
    writer = sqlite3.connect(layout.database)
    writer.execute("PRAGMA wal_autocheckpoint=0")
    writer.executemany(
        "INSERT INTO messages (user_id, chat_id, date, text) VALUES (1, 1, 'x', ?)",
        [(f"late {i}",) for i in range(500)],
    )
    writer.commit()
    assert Path(f"{layout.database}-wal").stat().st_size > 0
    expected = rows_in_live(layout.database)
    backup = keeper(layout).take("manual", "test", time.time()).backup
    assert rows_in(backup.data_path) == expected
    assert backup.manifest.rows["messages"] == expected
    writer.close()


def rows_in_live(path: Path) -> int:
    with sqlite3.connect(path) as connection:
        return int(connection.execute("SELECT count(*) FROM messages").fetchone()[0])


def test_every_backup_taken_under_a_steady_writer_verifies_and_holds_what_was_committed(layout):
    dbgen.create(layout.database, 2_000_000)
    committed = 0
    stop = threading.Event()
    errors: list[BaseException] = []

    def write() -> None:
        nonlocal committed
        connection = sqlite3.connect(layout.database, timeout=10)
        try:
            while not stop.is_set():
                connection.execute(
                    "INSERT INTO messages (user_id, chat_id, date, text) VALUES (2, 2, 'now', 'steady')"
                )
                connection.commit()
                committed += 1
        except BaseException as error:  # surfaced below
            errors.append(error)
        finally:
            connection.close()

    base = rows_in_live(layout.database)
    thread = threading.Thread(target=write)
    thread.start()
    backups = []
    try:
        wait_until(lambda: committed > 50, timeout=10)
        the_keeper = keeper(layout)
        for _ in range(22):
            before = committed
            outcome = the_keeper.take("manual", "under load", time.time())
            backups.append((before, outcome.backup))
    finally:
        stop.set()
        thread.join(10)
    assert not errors, errors
    assert committed > backups[0][0], "the writer kept writing during the backups"
    for before, backup in backups:
        assert verify_backup(backup, layout.run).ok
        assert rows_in(backup.data_path) >= base + before


def test_weekly_backups_are_compressed_and_decompress_byte_identical(layout, tmp_path):
    dbgen.create(layout.database, 1_000_000)
    the_keeper = keeper(layout)
    plain = the_keeper.take("manual", "plain", time.time()).backup
    weekly = the_keeper.take("weekly", "packed", time.time()).backup
    assert weekly.data_path.name.endswith(".db.zst")
    assert weekly.manifest.compression == "zstd"
    assert weekly.manifest.file_size < weekly.manifest.size_bytes / 1.5
    out = tmp_path / "unpacked.db"
    decompress(weekly.data_path, out)
    assert digest(out) == weekly.manifest.sha256 == plain.manifest.sha256
    assert verify_backup(weekly, layout.run).ok


def test_verify_finds_a_damaged_or_missing_backup(layout):
    dbgen.create(layout.database, 300_000)
    the_keeper = keeper(layout)
    first = the_keeper.take("manual", "a", time.time()).backup
    second = the_keeper.take("weekly", "b", time.time()).backup
    with first.data_path.open("r+b") as handle:
        handle.seek(5000)
        handle.write(b"\x00\x01\x02")
    assert not verify_backup(first, layout.run).ok
    assert "sha256" in verify_backup(first, layout.run).detail
    second.data_path.unlink()
    assert not verify_backup(second, layout.run).ok


def test_a_corrupt_source_gives_no_backup(layout):
    dbgen.create(layout.database, 300_000)
    size = layout.database.stat().st_size
    with layout.database.open("r+b") as handle:
        handle.seek(size // 2)
        handle.write(os.urandom(8192))
    with pytest.raises(SnapshotError):
        keeper(layout).take("manual", "x", time.time())
    assert Catalogue(layout).scan() == []
    assert not [p for p in layout.backups.rglob("*") if p.is_file() and p.name != ".lock"]


def test_an_abandoned_snapshot_leaves_nothing(layout):
    dbgen.create(layout.database, 300_000)
    request = SnapshotRequest("weekly", "x", time.time(), "test", proceed=lambda: False)
    with pytest.raises(SnapshotError, match="abandoned"):
        make_snapshot(layout.database, Catalogue(layout), request)
    assert not list(layout.tier("weekly").iterdir())


def test_retention_and_restart_dedupe(layout):
    dbgen.create(layout.database, 100_000)
    the_keeper = keeper(layout, keep={**KEEP, "hourly": 3})
    now = time.time()
    for i in range(6):
        the_keeper.take("hourly", "scheduled", now + i)
    hourly = [b for b in Catalogue(layout).scan() if b.tier == "hourly"]
    assert [b.created_at for b in hourly] == [now + 3, now + 4, now + 5]
    skipped = the_keeper.take("restart", "bot exited", now + 10, skip_if_unchanged=True)
    assert skipped.backup is None and "unchanged" in skipped.skipped
    with sqlite3.connect(layout.database) as connection:
        connection.execute("INSERT INTO users (id, first_name) VALUES (99999, 'New')")
    taken = the_keeper.take("restart", "bot exited", now + 11, skip_if_unchanged=True)
    assert taken.backup is not None


def test_schedule_survives_restarts_of_the_keeper(layout):
    from watchdog.rules import schedule

    dbgen.create(layout.database, 100_000)
    t0 = 1_800_000_000.0
    keeper(layout).take("hourly", "scheduled", t0)

    def due_at(now: float) -> list[str]:
        fresh = keeper(layout)  # a new watchdog: only the catalogue on disk carries the state
        newest = fresh.catalogue.newest_by_tier()
        at = {tier: (b.created_at if b else None) for tier, b in newest.items()}
        return schedule.due_tiers(now, at, {"hourly": 3600.0})

    assert due_at(t0 + 1800) == []
    assert due_at(t0 + 3600) == ["hourly"]


def test_kill_9_in_the_middle_of_a_backup_leaves_nothing_listed_and_start_cleans_up(
    layout, tmp_path
):
    dbgen.create(layout.database, 40_000_000)
    env = base_env(layout.root, free_port())
    env["DATABASE_PATH"] = str(layout.database)
    process = subprocess.Popen(
        [sys.executable, "-m", "watchdog", "backup", "--tier", "weekly"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(
            lambda: any(p.name.startswith(".tmp-") for p in layout.tier("weekly").glob("*")),
            timeout=30,
            interval=0.01,
            what="a backup in progress",
        )
        process.send_signal(signal.SIGKILL)
        process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    assert process.returncode == -signal.SIGKILL
    assert Catalogue(layout).scan() == [], "nothing partial may be listed"
    leftovers = list(layout.tier("weekly").iterdir())
    assert leftovers, "the kill should have left a temporary behind"
    assert {p.name for p in keeper(layout).cleanup()} == {p.name for p in leftovers}
    assert not list(layout.tier("weekly").iterdir())
    assert rows_in_live(layout.database) > 0


@pytest.fixture
def small_disk(tmp_path):
    with tmpfs(tmp_path / "small", "6m") as mount:
        yield mount


def test_disk_full_fails_cleanly_and_leaves_the_database_untouched(tmp_path, small_disk):
    layout = DataLayout(small_disk / "data", small_disk / "data" / "erixcast.db")
    layout.ensure()
    dbgen.create(layout.database, 3_500_000)
    before = digest(layout.database)
    the_keeper = keeper(layout, min_free=0)
    # The guard refuses up front: not enough room for a copy.
    with pytest.raises(BackupSkipped, match="not enough disk"):
        the_keeper.take("manual", "x", time.time())
    # And a snapshot that runs out of space mid-copy fails cleanly too.
    with pytest.raises(SnapshotError):
        make_snapshot(
            layout.database, Catalogue(layout), SnapshotRequest("manual", "x", time.time(), "t")
        )
    assert not [p for p in layout.backups.rglob("*") if p.is_file() and p.name != ".lock"]
    assert digest(layout.database) == before
    assert rows_in_live(layout.database) > 0


def test_under_pressure_old_backups_go_first_and_each_tiers_newest_stays(tmp_path, small_disk):
    layout = DataLayout(small_disk / "data", small_disk / "data" / "erixcast.db")
    layout.ensure()
    dbgen.create(layout.database, 600_000)
    the_keeper = keeper(layout, min_free=0)
    now = time.time()
    for i in range(4):
        the_keeper.take("manual", "fill", now + i)
    the_keeper.take("hourly", "one", now + 10)
    # Ask for a margin that only deleting old backups can give.
    size = layout.database.stat().st_size
    tight = keeper(layout, min_free=the_keeper.free_bytes() - size + 2 * size)
    outcome = tight.take("daily", "under pressure", now + 20)
    assert outcome.backup is not None
    assert len(outcome.pruned) >= 2
    left = {b.tier: b for b in Catalogue(layout).scan()}
    assert {"manual", "hourly", "daily"} <= set(left)


def test_health_degrades_when_the_disk_is_too_small_for_a_backup(processes, tmp_path, small_disk):
    data = small_disk / "data"
    data.mkdir()
    dbgen.create(data / "erixcast.db", 3_500_000)
    before = digest(data / "erixcast.db")
    port = free_port()
    processes.start("watchdog", [sys.executable, "-m", "watchdog", "run"], base_env(data, port))
    doc = wait_until(
        lambda: (
            (d := get_json(f"http://127.0.0.1:{port}/health")[1])["backups"]["last_error"] and d
        ),
        timeout=30,
    )
    assert doc["status"] == "degraded"
    assert "not enough disk" in doc["checks"]["backups"]["detail"]
    assert doc["database"]["integrity"] == "ok"
    assert digest(data / "erixcast.db") == before


def test_pressure_deletes_nothing_when_deleting_cannot_make_room(tmp_path, small_disk):
    layout = DataLayout(small_disk / "data", small_disk / "data" / "erixcast.db")
    layout.ensure()
    dbgen.create(layout.database, 600_000)
    the_keeper = keeper(layout, min_free=0)
    now = time.time()
    for i in range(3):
        the_keeper.take("manual", "fill", now + i)
    before = {b.id for b in Catalogue(layout).scan()}
    hopeless = keeper(layout, min_free=100 * 1024 * 1024)  # more than the whole disk
    with pytest.raises(BackupSkipped):
        hopeless.take("daily", "x", now + 10)
    assert {b.id for b in Catalogue(layout).scan()} == before, "nothing deleted in vain"


def test_a_data_file_whose_manifest_is_damaged_is_not_deleted(layout):
    dbgen.create(layout.database, 100_000)
    backup = keeper(layout).take("manual", "x", time.time()).backup
    backup.manifest_path.write_text("{ not json")
    assert Catalogue(layout).scan() == []
    keeper(layout).cleanup()
    assert backup.data_path.exists()


def test_a_manifest_pointing_outside_its_folder_is_ignored(layout):
    import json

    dbgen.create(layout.database, 100_000)
    backup = keeper(layout).take("manual", "x", time.time()).backup
    data = json.loads(backup.manifest_path.read_text())
    data["file"] = "../../erixcast.db"
    backup.manifest_path.write_text(json.dumps(data))
    assert Catalogue(layout).scan() == []
    keeper(layout).cleanup()
    assert layout.database.exists()
