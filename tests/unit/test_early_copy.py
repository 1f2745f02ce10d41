"""The deploy copy made beside the start-up quick_check (issue 14): a plain copy of a quiet file,
hashed as it goes, taken over by the staging only while the file is the one copied. Real files
through ``BackupKeeper``."""

from __future__ import annotations

import hashlib
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from conf.layout import DataLayout
from tests import dbgen
from watchdog.data import staging, stillcopy
from watchdog.data.backups import BackupKeeper
from watchdog.rules import deploy

NOW = 1_800_000_000.0


@pytest.fixture
def keeper(tmp_path: Path) -> BackupKeeper:
    data = tmp_path / "data"
    data.mkdir()
    dbgen.create(data / "erixcast.db", 400_000)
    return BackupKeeper(DataLayout(data, data / "erixcast.db"), {"deploy": 5}, 0, "v2")


def _rows(path: Path) -> list[tuple]:
    uri = f"file:{path}?mode=ro&immutable=1"
    with closing(sqlite3.connect(uri, uri=True)) as connection:
        return connection.execute("SELECT * FROM messages ORDER BY 1").fetchall()


def test_only_a_deploy_on_a_quick_start_copies_during_the_check():
    assert deploy.copy_during_check(True, "v2", "v1", True)
    assert not deploy.copy_during_check(False, "v2", "v1", True)  # a full check first
    assert not deploy.copy_during_check(True, "v1", "v1", True)  # no deploy
    assert not deploy.copy_during_check(True, "v2", "v1", False)  # PostgreSQL


def test_the_plain_copy_is_hashed_as_it_goes_and_stored_like_a_backup(keeper, tmp_path):
    source = keeper.layout.database
    target = tmp_path / "copy.db"
    digest = stillcopy.plain_copy(source, target, lambda: True)
    assert digest == hashlib.sha256(target.read_bytes()).hexdigest()
    assert target.read_bytes()[18:20] == b"\x01\x01", "rollback-journal mode, as a backup is"
    assert _rows(target) == _rows(source)
    with closing(sqlite3.connect(target)) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_an_early_copy_is_staged_without_copying_again_and_counts_once_proven(keeper):
    source = keeper.layout.database
    assert staging.copy_early(source, keeper.catalogue, "deploy", lambda: True)
    (early,) = keeper.layout.tier("deploy").glob(".tmp-early-*.db")
    inode = early.stat().st_ino
    staged = keeper.stage("deploy", "deploy: v1 -> v2", NOW)
    data = keeper.catalogue.staged_paths("deploy", staged.id)[0]
    assert data.stat().st_ino == inode, "the early copy itself, renamed"
    assert not list(keeper.layout.tier("deploy").glob(".tmp-*"))
    proven = keeper.prove(staged)
    assert proven.backup is not None, proven.detail
    assert proven.backup.manifest.sha256 == staged.sha256


def test_a_file_changed_after_the_early_copy_is_copied_again(keeper):
    source = keeper.layout.database
    assert staging.copy_early(source, keeper.catalogue, "deploy", lambda: True)
    with closing(sqlite3.connect(source)) as connection:
        connection.execute("PRAGMA journal_mode=DELETE")
        connection.execute(
            "DELETE FROM messages WHERE rowid IN (SELECT rowid FROM messages LIMIT 5)"
        )
        connection.commit()
    staged = keeper.stage("deploy", "deploy: v1 -> v2", NOW)
    data = keeper.catalogue.staged_paths("deploy", staged.id)[0]
    assert _rows(data) == _rows(source), "the file as it is now, not the early copy"
    assert not list(keeper.layout.tier("deploy").glob(".tmp-early-*"))


def test_a_file_with_commits_in_its_wal_gets_no_plain_copy(keeper):
    source = keeper.layout.database
    writer = sqlite3.connect(source)
    try:
        writer.execute("PRAGMA journal_mode=WAL")
        writer.execute("PRAGMA wal_autocheckpoint=0")
        writer.execute("DELETE FROM messages WHERE rowid IN (SELECT rowid FROM messages LIMIT 5)")
        writer.commit()
        assert Path(f"{source}-wal").stat().st_size > 0
        assert not staging.copy_early(source, keeper.catalogue, "deploy", lambda: True)
        staged = keeper.stage("deploy", "deploy: v1 -> v2", NOW)
        data = keeper.catalogue.staged_paths("deploy", staged.id)[0]
        assert _rows(data) == _rows_live(source)
    finally:
        writer.close()


def _rows_live(path: Path) -> list[tuple]:
    with closing(sqlite3.connect(path)) as connection:
        return connection.execute("SELECT * FROM messages ORDER BY 1").fetchall()
