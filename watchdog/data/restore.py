"""Installing a backup as the live database: atomically, re-verified, back in WAL mode."""

from __future__ import annotations

import os
import shutil
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from conf.layout import DataLayout
from watchdog.data.catalogue import Backup, Manifest
from watchdog.data.fs import fsync_dir, fsync_file
from watchdog.data.snapshot import decompress, integrity_problem, sha256_of

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


def ready_candidate(candidate: Path, manifest: Manifest) -> None:
    """Make ``candidate`` fit to become the live database: the bytes the manifest describes,
    passing integrity_check, switched to WAL, fsynced. Raises RestoreError."""
    if sha256_of(candidate) != manifest.sha256:
        raise RestoreError(f"backup {manifest.id}: the copy does not match its sha256")
    problem = integrity_problem(candidate)
    if problem:
        raise RestoreError(f"backup {manifest.id}: integrity_check failed: {problem}")
    set_wal(candidate)


def set_wal(candidate: Path) -> None:
    """A backup is stored in rollback-journal mode; the live database runs in WAL."""
    connection = sqlite3.connect(candidate)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
    finally:
        connection.close()
    fsync_file(candidate)


def swap_in(layout: DataLayout, candidate: Path) -> None:
    """Rename a ready candidate into place. The caller has moved the old database and its
    -wal/-shm aside first: a stale -wal beside the restored file would be replayed into it."""
    for path in (layout.database, *layout.database_companions):
        if path.exists():
            raise RestoreError(f"{path} is still there; move it aside before restoring")
    os.replace(candidate, layout.database)
    fsync_dir(layout.database.parent)


def install_file(layout: DataLayout, candidate: Path, manifest: Manifest) -> None:
    ready_candidate(candidate, manifest)
    swap_in(layout, candidate)


def candidate_path(layout: DataLayout, backup_id: str) -> Path:
    layout.database.parent.mkdir(parents=True, exist_ok=True)
    return layout.database.parent / f"{RESTORE_PREFIX}{backup_id}.db"


def prepare_backup(layout: DataLayout, backup: Backup) -> Path:
    """The backup's database materialized beside the live one and made ready; the caller swaps
    it in (or deletes it). Nothing live is touched.

    For a plain backup, ``integrity_check`` runs on the stored file while it is being copied
    (SQLite releases the GIL; the machine has a second core), and the copy must then hash to the
    manifest's sha256: the same bytes that passed. That takes the copy off the time the bot is
    down. A compressed backup is checked after decompression, as it must be.
    """
    temporary = candidate_path(layout, backup.id)
    try:
        if backup.manifest.compression is not None:
            materialize(backup, temporary)
            ready_candidate(temporary, backup.manifest)
            return temporary
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="restore-check") as pool:
            checking = pool.submit(integrity_problem, backup.data_path)
            materialize(backup, temporary)
            same = sha256_of(temporary) == backup.manifest.sha256
            problem = checking.result()
        if not same:
            raise RestoreError(f"backup {backup.id}: the copy does not match its sha256")
        if problem:
            raise RestoreError(f"backup {backup.id}: integrity_check failed: {problem}")
        set_wal(temporary)
    except (OSError, sqlite3.DatabaseError) as error:
        discard(temporary)
        raise RestoreError(f"backup {backup.id}: {error}") from None
    except RestoreError:
        discard(temporary)
        raise
    return temporary


def discard(candidate: Path) -> None:
    for path in (candidate, Path(f"{candidate}-wal"), Path(f"{candidate}-shm")):
        path.unlink(missing_ok=True)


def install_backup(layout: DataLayout, backup: Backup) -> None:
    candidate = prepare_backup(layout, backup)
    try:
        swap_in(layout, candidate)
    finally:
        discard(candidate)


LEFTOVER_PREFIXES = (RESTORE_PREFIX, ".tmp-offsite-")


def cleanup_restore_leftovers(layout: DataLayout) -> list[Path]:
    """Copies of backups left by an interrupted restore or offsite fetch (never the only copy
    of anything)."""
    folder = layout.database.parent
    if not folder.is_dir():
        return []
    removed = [path for path in folder.iterdir() if path.name.startswith(LEFTOVER_PREFIXES)]
    for path in removed:
        path.unlink(missing_ok=True)
    return removed
