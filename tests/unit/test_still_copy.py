"""A backup's plain copy of a database that holds still (``watchdog.data.stillcopy``): made under a
read transaction that keeps the main file as it was, refused for a file with commits in its
``-wal``, and discarded when the file is written outside SQLite's locks. Real SQLite files."""

from __future__ import annotations

import hashlib
import logging
import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest

from tests import dbgen
from watchdog.data import stillcopy
from watchdog.data.hashcopy import COPY_CHUNK

SIZE = 3 * COPY_CHUNK
"""Three chunks: ``proceed`` is asked while most of the file is still to copy."""


def _database(tmp_path: Path, journal_mode: str) -> Path:
    path = tmp_path / "erixcast.db"
    dbgen.create(path, SIZE)
    with closing(sqlite3.connect(path)) as connection:
        connection.execute(f"PRAGMA journal_mode={journal_mode}")
    return path


def _rows(path: Path) -> list[tuple]:
    with closing(sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)) as connection:
        return connection.execute("SELECT * FROM messages ORDER BY rowid").fetchall()


def _once(action: Callable[[], None]) -> Callable[[], bool]:
    """A ``proceed`` that does ``action`` the first time it is asked (mid-copy), then says go on."""
    done: list[bool] = []

    def proceed() -> bool:
        if not done:
            done.append(True)
            action()
        return True

    return proceed


def test_a_still_file_is_copied_plain_and_hashed_as_a_stored_backup(tmp_path):
    source = _database(tmp_path, "WAL")
    target = tmp_path / "copy.db"
    digest = stillcopy.copy_if_still(source, target, lambda: True)
    assert digest == hashlib.sha256(target.read_bytes()).hexdigest()
    assert target.read_bytes()[18:20] == b"\x01\x01", "rollback-journal mode, as a backup is"
    assert _rows(target) == _rows(source)


def test_a_file_with_commits_in_its_wal_gets_no_plain_copy(tmp_path):
    source = _database(tmp_path, "WAL")
    with closing(sqlite3.connect(source)) as writer:
        writer.execute("PRAGMA wal_autocheckpoint=0")
        writer.execute("DELETE FROM messages WHERE rowid <= 5")
        writer.commit()
        assert Path(f"{source}-wal").stat().st_size > 0
        target = tmp_path / "copy.db"
        assert stillcopy.copy_if_still(source, target, lambda: True) is None
        assert not target.exists()


def test_a_commit_during_the_copy_waits_in_the_wal_and_the_copy_is_of_before(tmp_path):
    source = _database(tmp_path, "WAL")
    before = _rows(source)
    backfilled: list[tuple] = []

    def write_and_checkpoint() -> None:
        with closing(sqlite3.connect(source, timeout=0)) as writer:
            writer.execute("DELETE FROM messages WHERE rowid <= 5")
            writer.commit()
            backfilled.append(writer.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone())

    target = tmp_path / "copy.db"
    digest = stillcopy.copy_if_still(source, target, _once(write_and_checkpoint))
    assert digest is not None, "the main file was held still: the plain copy stands"
    busy, _, done = backfilled[0]
    assert busy == 1 or done <= 0, "the checkpoint could not write into the main file"
    assert _rows(target) == before
    with closing(sqlite3.connect(source)) as connection:
        assert connection.execute("SELECT count(*) FROM messages WHERE rowid <= 5").fetchone() == (
            0,
        ), "the commit is kept (in the -wal)"


def test_in_rollback_journal_mode_a_writer_waits_for_the_copy(tmp_path):
    source = _database(tmp_path, "DELETE")
    refused: list[str] = []

    def try_to_write() -> None:
        with closing(sqlite3.connect(source, timeout=0)) as writer:
            try:
                writer.execute("DELETE FROM messages WHERE rowid <= 5")
                writer.commit()
            except sqlite3.OperationalError as error:
                refused.append(str(error))

    before = _rows(source)
    target = tmp_path / "copy.db"
    assert stillcopy.copy_if_still(source, target, _once(try_to_write)) is not None
    assert refused and "locked" in refused[0]
    assert _rows(target) == before == _rows(source)


def test_a_file_written_outside_sqlites_locks_during_the_copy_gets_no_plain_copy(
    tmp_path, caplog: pytest.LogCaptureFixture
):
    source = _database(tmp_path, "WAL")

    def scribble() -> None:
        with source.open("r+b") as handle:  # what no SQLite lock stops: another tool's write
            handle.seek(SIZE - 4096)
            handle.write(b"\xff" * 64)

    target = tmp_path / "copy.db"
    with caplog.at_level(logging.WARNING, logger="watchdog.data.stillcopy"):
        assert stillcopy.copy_if_still(source, target, _once(scribble)) is None
    assert not target.exists()
    assert "changed while it was copied" in caplog.text
