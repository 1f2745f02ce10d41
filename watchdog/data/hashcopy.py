"""The one copy of a database file nobody writes, with its sha256: a backup installed as the live
database (``snapshot.materialize``), the deploy copy made before launch (``staging``), a backup's
copy of a file that holds still (``stillcopy``).

The bytes are copied in the kernel (``copy_file_range``: no pass through our memory) while a
thread hashes the *target* as it fills, reading back what has been written: the digest is of the
very bytes the installed file holds, so "the sha256 matches the manifest" proves the file that
is put in place, not a buffer that was meant to be written. Copying and hashing run at once, on
two cores (both release the GIL); where the kernel cannot copy between the two files, a plain
read and write does the copying, hashed the same way. What is copied is handed to the disk as
the copy goes (``sync_file_range``: writeback starts, nothing waits), so the closing ``fsync``
waits only for the tail rather than for the whole gigabyte.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import os
import queue
import sys
import threading
from collections.abc import Callable
from functools import cache
from pathlib import Path

COPY_CHUNK = 8 << 20
"""What one ``copy_file_range`` call moves, and how often ``proceed`` is asked."""
HASH_CHUNK = 1 << 20
"""The hashing thread's one buffer (the only memory the copy needs of ours)."""
HEADER_OFFSET = 18
"""Bytes 18–19 of an SQLite header: the file format's write and read versions."""
NO_KERNEL_COPY = {errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EBADF}
SYNC_FILE_RANGE_WRITE = 2

Proceed = Callable[[], bool]


class CopyAbandoned(Exception):
    """``proceed`` said no; the target is left for the caller to remove."""


def _always() -> bool:
    return True


def _hash_written(target: Path, published: queue.Queue[int | None]) -> str:
    """The sha256 of ``target`` read back up to each offset the copier publishes (None: the end)."""
    digest = hashlib.sha256()
    buffer = bytearray(HASH_CHUNK)
    view = memoryview(buffer)
    done = 0
    with target.open("rb", buffering=0) as reader:
        while (until := published.get()) is not None:
            while done < until:
                count = reader.readinto(view[: min(HASH_CHUNK, until - done)])
                if not count:
                    raise OSError(errno.EIO, f"{target} is shorter than what was written to it")
                digest.update(view[:count])
                done += count
    return digest.hexdigest()


@cache
def _sync_file_range() -> Callable[[int, int, int, int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    return function  # type: ignore[no-any-return]


def _start_writeback(target: int, offset: int, count: int) -> None:
    """Start writing ``count`` bytes at ``offset`` to the disk, waiting for nothing (the closing
    fsync is what makes them durable; this only spreads its work over the copy)."""
    function = _sync_file_range()
    if function is not None:
        function(target, offset, count, SYNC_FILE_RANGE_WRITE)


def _copy_range(source: int, target: int) -> int:
    """Bytes moved by the kernel (0: the end); -1 when it cannot copy between these files."""
    try:
        return os.copy_file_range(source, target, COPY_CHUNK)
    except OSError as error:
        if error.errno in NO_KERNEL_COPY:
            return -1
        raise


def _copy_plain(source: int, target: int, buffer: bytearray) -> int:
    count = os.readv(source, [buffer])
    view = memoryview(buffer)[:count]
    while view:
        view = view[os.write(target, view) :]
    return count


def copy_hashed(
    source: Path,
    target: Path,
    proceed: Proceed = _always,
    *,
    header: bytes | None = None,
    nice: int = 0,
) -> str:
    """Copy ``source`` (nobody writes it) to ``target`` (replaced if there), fsynced; returns the
    sha256 of the target's bytes as read back. ``header``: two bytes written over bytes 18–19
    before anything is hashed (1, 1: a copy of a WAL file in rollback-journal mode, like every
    stored backup). ``nice``: the copy's threads yield this much (a check that the copy runs
    beside, and that matters more, keeps its core). Raises OSError, CopyAbandoned (the target
    is then the caller's to remove)."""
    if not nice:
        return _copy_hashed(source, target, proceed, header)
    outcome: dict[str, str | BaseException] = {}

    def yielding() -> None:  # on Linux os.nice is this thread's; the hashing thread inherits it
        try:
            with contextlib.suppress(OSError):
                os.nice(nice)
            outcome["digest"] = _copy_hashed(source, target, proceed, header)
        except BaseException as error:
            outcome["error"] = error

    thread = threading.Thread(target=yielding, name="copy", daemon=True)
    thread.start()
    thread.join()
    error = outcome.get("error")
    if isinstance(error, BaseException):
        raise error
    return str(outcome["digest"])


def _copy_hashed(source: Path, target: Path, proceed: Proceed, header: bytes | None) -> str:
    published: queue.Queue[int | None] = queue.Queue()
    result: dict[str, str | BaseException] = {}

    def hash_it() -> None:
        try:
            result["digest"] = _hash_written(target, published)
        except BaseException as error:  # handed to the copier, which raises it
            result["error"] = error

    source_fd = os.open(source, os.O_RDONLY)
    try:
        target_fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        hasher = threading.Thread(target=hash_it, name="copy-sha256", daemon=True)
        hasher.start()
        try:
            os.posix_fadvise(source_fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
            _copy_all(source_fd, target_fd, published, proceed, header)
            os.fsync(target_fd)
        finally:
            published.put(None)
            hasher.join()
            os.close(target_fd)
    finally:
        os.close(source_fd)
    error = result.get("error")
    if isinstance(error, BaseException):
        raise error
    return str(result["digest"])


def _copy_all(
    source: int,
    target: int,
    published: queue.Queue[int | None],
    proceed: Proceed,
    header: bytes | None,
) -> None:
    written = 0
    buffer: bytearray | None = None
    while True:
        count = -1 if buffer is not None else _copy_range(source, target)
        if count < 0:
            buffer = buffer or bytearray(COPY_CHUNK)
            count = _copy_plain(source, target, buffer)
        if not count:
            return
        if header is not None and written < HEADER_OFFSET + len(header) <= written + count:
            os.pwrite(target, header, HEADER_OFFSET)
        _start_writeback(target, written, count)
        written += count
        published.put(written)
        if not proceed():
            raise CopyAbandoned("the copy was abandoned (stop requested)")
