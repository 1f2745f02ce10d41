"""Installing a file as the live database: the candidate made ready beside it (its schema
proven the bot's own, switched to WAL), then renamed into place once the old database and its
``-wal``/``-shm`` are gone. Shared by recovery, an operator's restore and the offsite fetch."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from conf.layout import DataLayout
from conf.schema import expected_schema
from watchdog.data.database import connect, read_schema
from watchdog.data.fs import fsync_dir, fsync_file
from watchdog.rules.recovery import schema_differences

RESTORE_PREFIX = ".tmp-restore-"


class RestoreError(Exception):
    """The backup could not be installed; the live database path was not touched."""


def schema_problem(path: Path) -> str | None:
    """None when the file's schema is the bot's (``conf.schema.expected_schema``, nothing more);
    else what differs. Read with trusted_schema off: nothing in the file runs."""
    try:
        actual = read_schema(path)
    except sqlite3.DatabaseError as error:
        return f"schema unreadable: {error}"
    differences = schema_differences(actual, expected_schema())
    if not differences:
        return None
    shown = "; ".join(differences[:5]) + (
        f"; and {len(differences) - 5} more" if len(differences) > 5 else ""
    )
    return f"not the bot's schema: {shown}"


def check_schema(path: Path, backup_id: str) -> None:
    """RestoreError naming what differs when the file's schema is not the bot's."""
    problem = schema_problem(path)
    if problem:
        raise RestoreError(f"backup {backup_id}: {problem}")


def set_wal(candidate: Path) -> None:
    """A backup is stored in rollback-journal mode; the live database runs in WAL."""
    connection = connect(candidate, "rw")
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


def candidate_path(layout: DataLayout, backup_id: str) -> Path:
    layout.database.parent.mkdir(parents=True, exist_ok=True)
    return layout.database.parent / f"{RESTORE_PREFIX}{backup_id}.db"


def discard(candidate: Path) -> None:
    for path in (candidate, Path(f"{candidate}-wal"), Path(f"{candidate}-shm")):
        path.unlink(missing_ok=True)
