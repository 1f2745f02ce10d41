"""Installing a backup as the live database: atomically, re-verified, back in WAL mode."""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

from conf.layout import DataLayout
from watchdog.catalogue import Backup, Manifest, fsync_dir, fsync_file
from watchdog.snapshot import decompress, integrity_problem, sha256_of

RESTORE_PREFIX = ".tmp-restore-"


class RestoreError(Exception):
    """The backup could not be installed; the live database path was not touched."""


def materialize(backup: Backup, target: Path) -> None:
    """The plain database of ``backup`` at ``target`` (copied or decompressed), fsynced."""
    if backup.manifest.compression == "zstd":
        decompress(backup.data_path, target)
    else:
        shutil.copyfile(backup.data_path, target)
        fsync_file(target)


def install_file(layout: DataLayout, candidate: Path, manifest: Manifest) -> None:
    """Verify ``candidate`` against ``manifest``, switch it to WAL and rename it into place.

    The caller has moved the old database and its -wal/-shm aside first: a stale -wal beside
    the restored file would be replayed into it.
    """
    if sha256_of(candidate) != manifest.sha256:
        raise RestoreError(f"backup {manifest.id}: the copy does not match its sha256")
    problem = integrity_problem(candidate)
    if problem:
        raise RestoreError(f"backup {manifest.id}: integrity_check failed: {problem}")
    for companion in layout.database_companions:
        if companion.exists():
            raise RestoreError(f"{companion} is still there; move it aside before restoring")
    connection = sqlite3.connect(candidate)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
    finally:
        connection.close()
    fsync_file(candidate)
    os.replace(candidate, layout.database)
    fsync_dir(layout.database.parent)


def install_backup(layout: DataLayout, backup: Backup) -> None:
    layout.database.parent.mkdir(parents=True, exist_ok=True)
    temporary = layout.database.parent / f"{RESTORE_PREFIX}{backup.id}.db"
    try:
        materialize(backup, temporary)
        install_file(layout, temporary, backup.manifest)
    except (OSError, sqlite3.DatabaseError) as error:
        raise RestoreError(f"backup {backup.id}: {error}") from None
    finally:
        temporary.unlink(missing_ok=True)
        for companion in (Path(f"{temporary}-wal"), Path(f"{temporary}-shm")):
            companion.unlink(missing_ok=True)


def cleanup_restore_leftovers(layout: DataLayout) -> list[Path]:
    """Copies of backups left by an interrupted restore (never the only copy of anything)."""
    folder = layout.database.parent
    if not folder.is_dir():
        return []
    removed = [path for path in folder.iterdir() if path.name.startswith(RESTORE_PREFIX)]
    for path in removed:
        path.unlink(missing_ok=True)
    return removed
