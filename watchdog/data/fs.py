"""The watchdog's file effects: owner-only trees, moves, files set aside, the instance lock.

The durable write and the lock themselves are :mod:`conf.files` (shared with the bot); they
are re-exported here so the watchdog's modules import their file helpers from one place.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from conf.files import (
    DIR_MODE,
    FILE_MODE,
    FileLock,
    LockBusy,
    atomic_write,
    atomic_write_json,
    fsync_dir,
    fsync_file,
    locked,
)

__all__ = [
    "DIR_MODE",
    "FILE_MODE",
    "OWNER_ONLY_UMASK",
    "AlreadyRunning",
    "FileLock",
    "InstanceLock",
    "LockBusy",
    "atomic_write",
    "atomic_write_json",
    "fsync_dir",
    "fsync_file",
    "locked",
    "move_file",
    "note_set_aside",
    "restrict_tree",
    "set_aside_files",
]


OWNER_ONLY_UMASK = 0o077
"""Set first thing by every entry point, so whatever it creates (SQLite files, logs) is
owner-only."""


def free_bytes(path: Path) -> int:
    """Bytes free to this process on the filesystem holding ``path`` (``shutil.disk_usage``'s
    ``free``, without importing ``shutil``'s archive modules into every command)."""
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize


def restrict_tree(root: Path) -> int:
    """Make ``root`` and everything below it owner-only (folders 0700, files 0600), as it must
    stay; links are not followed. Returns how many modes were changed."""
    changed = 0
    for folder, folders, files in os.walk(root):
        for name, wanted in [(folder, DIR_MODE)] + [
            (os.path.join(folder, item), FILE_MODE) for item in files
        ]:
            try:
                status = os.lstat(name)
                if stat.S_ISLNK(status.st_mode) or not status.st_mode & 0o077:
                    continue
                os.chmod(name, stat.S_IMODE(status.st_mode) & ~0o077 | (wanted & 0o700))
                changed += 1
            except FileNotFoundError:
                continue
        folders[:] = [item for item in folders if not os.path.islink(os.path.join(folder, item))]
    return changed


def move_file(source: Path, target: Path) -> None:
    """Rename, or across filesystems copy, fsync and remove the source."""
    try:
        os.replace(source, target)
    except OSError:
        import shutil  # only across filesystems: the terminal client stays small

        shutil.copy2(source, target)
        fsync_file(target)
        source.unlink()


_set_aside: dict[str, str] = {}


def note_set_aside(path: Path, kind: str, why: str) -> None:
    """Record (and log, once per file) a file in DATA_DIR that was not trusted: a manifest, a
    state file or a note of the wrong shape. It stays where it is or beside, never deleted;
    ``set_aside_files`` is what /health reports."""
    key = str(path)
    text = f"{kind}: {why}"
    if _set_aside.get(key) != text:
        import logging  # only here: the commands that never set a file aside stay small

        logging.getLogger(__name__).error("%s %s set aside, not trusted: %s", kind, path, why)
        _set_aside[key] = text


def set_aside_files() -> dict[str, str]:
    return dict(_set_aside)


class AlreadyRunning(Exception):
    def __init__(self, path: Path, holder: str) -> None:
        self.holder = holder
        super().__init__(
            f"another watchdog (pid {holder or 'unknown'}) already holds {path}; "
            "two watchdogs on one DATA_DIR would run two bots on one database"
        )


class InstanceLock(FileLock):
    """One watchdog per DATA_DIR: held for the watchdog's whole life (or a CLI command's)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, timeout=0, record_holder=True)

    def acquire(self) -> None:
        try:
            super().acquire()
        except LockBusy as busy:
            raise AlreadyRunning(self.path, busy.holder) from None
