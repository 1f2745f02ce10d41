"""The one place for durable file writes and advisory locks, shared by the watchdog and the bot.

Every file written to DATA_DIR goes through :func:`atomic_write` (a temporary file beside the
target, fsynced, renamed over it, the folder fsynced) and every lock is a :class:`FileLock`
(``flock``, released by the kernel however the holder dies).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

FILE_MODE = 0o600
"""Data files are owner-only: they hold users' messages."""
DIR_MODE = 0o700


def fsync_file(path: Path) -> None:
    with path.open("rb") as handle:
        os.fsync(handle.fileno())


def fsync_dir(path: Path) -> None:
    """Make a rename or creation in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(
    path: Path, data: bytes | str, mode: int = FILE_MODE, temporary: Path | None = None
) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves either the old or the new file.

    ``temporary`` names the file written first (beside ``path``), for callers whose clean-up
    recognises their own leftovers by name."""
    payload = data.encode() if isinstance(data, str) else data
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary or path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write_json(path: Path, document: Any, mode: int = FILE_MODE) -> None:
    atomic_write(path, json.dumps(document, indent=2, sort_keys=True) + "\n", mode)


class LockBusy(Exception):
    """The lock is held by another process (its pid, as it wrote it, in ``holder``)."""

    def __init__(self, path: Path, holder: str) -> None:
        super().__init__(f"{path} is held by pid {holder or 'unknown'}")
        self.path = path
        self.holder = holder


class FileLock:
    """An exclusive ``flock`` on ``path``.

    ``timeout`` None waits for ever, 0 fails at once, else waits that many seconds (polling, so
    a deadline holds whatever the other holder does). ``record_holder`` writes our pid into the
    file, so a refused caller can say who holds it.
    """

    def __init__(
        self, path: Path, timeout: float | None = None, record_holder: bool = False
    ) -> None:
        self.path = path
        self.timeout = timeout
        self.record_holder = record_holder
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, FILE_MODE)
        try:
            self._take(fd)
        except BaseException:
            os.close(fd)
            raise
        if self.record_holder:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def _take(self, fd: int) -> None:
        if self.timeout is None:
            fcntl.flock(fd, fcntl.LOCK_EX)
            return
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
                    raise LockBusy(self.path, holder) from None
                time.sleep(0.05)

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


@contextlib.contextmanager
def locked(path: Path, timeout: float | None = None) -> Iterator[None]:
    with FileLock(path, timeout):
        yield
