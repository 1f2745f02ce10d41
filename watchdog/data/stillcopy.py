"""The plain copy of a database file that holds still: what a backup copies, in place of SQLite's
online backup, when every commit is in the main file.

The online backup moves every page through two page caches, and its copy is then hashed and fsynced
by passes of their own beside the check; the kernel's copy (``hashcopy``) is hashed as it is read
back and handed to the disk as it goes, so it is done, hashed and durable before the check begins
(at 100 MB the verified backup about 4 % faster). A plain copy is a faithful snapshot only while
nothing changes the file, so :func:`copy_if_still` makes it under a read transaction that began
with an empty ``-wal`` and no rollback journal: that reader's snapshot is the main file itself, and
until it ends no checkpoint may write into the file (a reader of the main file alone holds
``WAL_READ_LOCK(0)``, which every backfill must take first) nor, in rollback-journal mode, any
writer (its SHARED lock). New commits meanwhile go to the ``-wal`` and are the next backup's. The
file's facts (size, mtime, inode, change counter) are compared before and after as well: a file
written outside SQLite's locks gives no copy, and the caller makes the online one."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

from watchdog.data.cleanstop import read_facts
from watchdog.data.database import connect_read_only
from watchdog.data.hashcopy import Proceed, copy_hashed
from watchdog.rules.startup import FileFacts

log = logging.getLogger(__name__)

ROLLBACK_JOURNAL_HEADER = b"\x01\x01"
"""The file format's write and read versions (header bytes 18–19): 2 in WAL mode, 1 in
rollback-journal mode (what the online backup API gives a copy, and what a stored backup is)."""


def quiet(source: Path) -> FileFacts | None:
    """The file's facts when a plain copy of it is a consistent one: every commit in the main
    file (no ``-wal`` content, no rollback journal); None otherwise."""
    facts = read_facts(source)
    if facts is None or facts.wal_size or Path(f"{source}-journal").exists():
        return None
    return facts


def same_file(before: FileFacts, after: FileFacts | None) -> bool:
    """The main file is as it was (a ``-wal`` that grew or appeared meanwhile changes nothing)."""
    return after is not None and (
        after.size,
        after.mtime_ns,
        after.inode,
        after.change_counter,
    ) == (before.size, before.mtime_ns, before.inode, before.change_counter)


def plain_copy(source: Path, target: Path, proceed: Proceed, nice: int = 0) -> str:
    """Copy a database file nobody writes (``hashcopy.copy_hashed``), fsynced, in
    rollback-journal mode like any stored backup. Returns the copy's sha256. Raises OSError,
    ``hashcopy.CopyAbandoned``."""
    return copy_hashed(source, target, proceed, header=ROLLBACK_JOURNAL_HEADER, nice=nice)


def copy_if_still(source: Path, target: Path, proceed: Proceed) -> str | None:
    """The plain copy of ``source`` at ``target`` (fsynced; its sha256) made under a read
    transaction that holds the main file still, or None (nothing left at ``target``) when the
    file does not hold still: commits in the ``-wal``, a rollback journal, the file busy, or
    written meanwhile (outside SQLite's locks). Raises OSError, ``hashcopy.CopyAbandoned``; the
    target is then the caller's to remove."""
    try:
        reader = connect_read_only(source, timeout=0)
    except sqlite3.Error:
        return None
    try:
        try:
            reader.execute("BEGIN")
            reader.execute("SELECT 1 FROM sqlite_schema LIMIT 1").fetchall()
        except sqlite3.Error:
            return None
        before = quiet(source)  # after the transaction began: its snapshot is the main file
        if before is None:
            return None
        digest = plain_copy(source, target, proceed)
        if not same_file(before, read_facts(source)):
            target.unlink(missing_ok=True)
            log.warning("%s changed while it was copied: making the online copy", source)
            return None
        return digest
    finally:
        reader.close()
