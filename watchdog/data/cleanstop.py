"""The clean-stop record: what the database file looked like when the watchdog last let go of it
in order (see ``rules.startup``). Written at an orderly stop and after an operator's restore;
read — and removed, so it vouches for one start only — before the start-up check."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from conf.layout import DataLayout
from watchdog.data.fs import atomic_write_json
from watchdog.rules.startup import CleanStop, FileFacts, Proof, parse_record

log = logging.getLogger(__name__)

RECORD_NAME = "clean-stop.json"
CHANGE_COUNTER = slice(24, 28)
"""SQLite's file change counter in the 100-byte header (big-endian)."""


def record_path(layout: DataLayout) -> Path:
    return layout.root / RECORD_NAME


def read_facts(database: Path) -> FileFacts | None:
    """The file's size, mtime, inode, header change counter and ``-wal`` size, without opening it
    as a database; None when it is missing, not a regular file, or shorter than a header."""
    try:
        with database.open("rb") as handle:
            stat = os.fstat(handle.fileno())
            header = handle.read(100)
    except OSError:
        return None
    if len(header) < 100 or not database.is_file() or database.is_symlink():
        return None
    try:
        wal: int | None = Path(f"{database}-wal").stat().st_size
    except FileNotFoundError:
        wal = None
    except OSError:
        return None
    return FileFacts(
        size=stat.st_size,
        mtime_ns=stat.st_mtime_ns,
        inode=stat.st_ino,
        change_counter=int.from_bytes(header[CHANGE_COUNTER], "big"),
        wal_size=wal,
    )


def write_record(layout: DataLayout, proof: Proof, now: float) -> CleanStop | None:
    """Record the database as it is now; None (and no record) when it cannot be looked at."""
    facts = read_facts(layout.database)
    if facts is None:
        forget_record(layout)
        return None
    record = CleanStop(str(layout.database), facts, proof, now)
    atomic_write_json(record_path(layout), record.as_dict())
    return record


def take_record(layout: DataLayout) -> tuple[CleanStop | None, str | None]:
    """The record left by the last clean stop, removed as it is read (a record vouches for the
    next start only), and why it cannot be used when it cannot (it is input: never trusted)."""
    path = record_path(layout)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, None
    except (OSError, UnicodeDecodeError) as error:
        forget_record(layout)
        return None, f"the clean-stop record is unreadable ({error})"
    forget_record(layout)
    try:
        return parse_record(json.loads(text)), None
    except ValueError as error:  # json.JSONDecodeError is a ValueError
        log.warning("ignored the clean-stop record %s: %s", path, error)
        return None, f"the clean-stop record is not valid ({error})"


def forget_record(layout: DataLayout) -> None:
    try:
        record_path(layout).unlink(missing_ok=True)
    except IsADirectoryError:
        log.warning("%s is a folder, not a clean-stop record: ignored", record_path(layout))
    except OSError as error:
        log.warning("could not remove the clean-stop record: %s", error)
