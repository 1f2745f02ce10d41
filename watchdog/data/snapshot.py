"""Making one verified backup file, and re-verifying one.

A snapshot is taken with SQLite's online backup API in a single step from a read-only connection
(never by copying a live file as it is: a copy misses rows still in ``-wal`` or comes out torn),
into a temporary file beside its final place; a file whose every commit is in the main file is
copied plain instead, under a read transaction that holds it still (``stillcopy``). It is switched
out of WAL mode so it is one self-contained file, fsynced, checked with ``PRAGMA integrity_check``,
counted, hashed, and optionally compressed with zstandard, all streaming so memory does not grow
with the database.

The watchdog's making runs in a worker process at low priority (``data.maker`` runs
:func:`build`): the watchdog answering HTTP only waits for it, and kills it to abandon it. A
command with no stack running runs :func:`build` itself.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from watchdog.data.catalogue import TMP_PREFIX, Backup, Manifest
from watchdog.data.database import connect, connect_read_only, count_rows, sqlite_version
from watchdog.data.fs import fsync_file
from watchdog.data.hashcopy import CopyAbandoned, copy_hashed
from watchdog.data.integrity import Abandoned, Checkers, check_integrity, workers_for
from watchdog.data.stillcopy import copy_if_still

CHUNK = 1 << 20
ONLINE_CACHE_KIB = 256
"""Page cache of each side of an online copy, which visits each page once: SQLite's default 2 MB
per side only cost memory (the worker's peak for a 100 MB backup with commits in the ``-wal``
41.1 → 38.8 MB, the copy 0.063 → 0.057 s)."""
ZSTD_LEVEL = 6
COMPRESSED_TIERS = frozenset({"weekly"})


class SnapshotError(Exception):
    """The snapshot could not be made or did not verify; nothing was added to the catalogue."""


Proceed = Callable[[], bool]
"""Asked between steps (and inside long ones): False abandons the work with SnapshotError."""


def _always() -> bool:
    return True


def _check(proceed: Proceed) -> None:
    if not proceed():
        raise SnapshotError("abandoned (deadline reached or the watchdog is stopping)")


def sha256_of(path: Path, proceed: Proceed = _always) -> str:
    """One buffer, read into again and again: a thread beside the check allocates nothing more."""
    digest, buffer = hashlib.sha256(), bytearray(CHUNK)
    view = memoryview(buffer)
    with path.open("rb", buffering=0) as handle:
        while count := handle.readinto(buffer):
            digest.update(view[:count])
            _check(proceed)
    return digest.hexdigest()


def _open_frozen(path: Path, proceed: Proceed) -> sqlite3.Connection:
    """A read-only connection to a file nobody writes; long statements stop when told to."""
    connection = connect(path, "ro", immutable=True)
    connection.set_progress_handler(lambda: 0 if proceed() else 1, 100_000)
    return connection


def integrity_problem(
    path: Path, proceed: Proceed = _always, checkers: Checkers | None = None
) -> str | None:
    """None when the file nobody writes passes the full check (split by table across worker
    processes, ``data.integrity``; ``checkers``: workers started for it), else what it found
    (or why it could not run)."""
    try:
        verdict = check_integrity(path, frozen=True, proceed=proceed, checkers=checkers)
    except Abandoned:
        raise SnapshotError("abandoned during integrity_check") from None
    return None if verdict.ok else verdict.summary()


def _copy_online(source: Path, target: Path, proceed: Proceed) -> None:
    """One backup step: the whole database under one read transaction (a WAL reader never
    blocks the writer). The progress callback only runs between steps, i.e. while the source is
    busy; that is where a deadline can cut in."""

    def progress(status: int, remaining: int, total: int) -> None:
        _check(proceed)

    source_connection = connect_read_only(source, timeout=0)
    try:
        target_connection = connect(target, "rwc")
        try:
            # A fresh temporary file needs no journal and no syncs while it fills: it is fsynced
            # once, whole, before it counts for anything.
            target_connection.execute("PRAGMA synchronous=OFF")
            target_connection.execute("PRAGMA journal_mode=OFF")
            for connection in (source_connection, target_connection):
                connection.execute(f"PRAGMA cache_size=-{ONLINE_CACHE_KIB}")
            source_connection.backup(target_connection, pages=-1, progress=progress)
            target_connection.execute("PRAGMA journal_mode=DELETE")
        finally:
            target_connection.close()
    finally:
        source_connection.close()


class _Hashed:
    """A file being written, hashed as it is written (no second read of what was written)."""

    def __init__(self, target: BinaryIO) -> None:
        self.target, self.digest = target, hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        return self.target.write(data)


def _compress(plain: Path, packed: Path, proceed: Proceed) -> str:
    """``plain`` compressed into ``packed`` (fsynced); the sha256 of the compressed bytes."""
    import zstandard  # only a compressed tier's making needs it

    compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_checksum=True, threads=-1)
    with plain.open("rb") as source, packed.open("wb") as target:
        hashed = _Hashed(target)
        with compressor.stream_writer(hashed, closefd=False) as writer:
            while chunk := source.read(CHUNK):
                writer.write(chunk)
                _check(proceed)
        target.flush()
        os.fsync(target.fileno())
    return hashed.digest.hexdigest()


def decompress(packed: Path, plain: Path, limit: int | None = None) -> str:
    """The sha256 of what was written. Raises ValueError for what does not decompress, and past
    ``limit`` bytes out (zstd reaches 32,700:1 on crafted input: a manifest's size is the bound
    on what one of its files may become); OSError."""
    import zstandard  # only a compressed backup's reading needs it

    digest = hashlib.sha256()
    written = 0
    with packed.open("rb") as source, plain.open("wb") as target:
        try:
            with zstandard.ZstdDecompressor().stream_reader(source, read_size=CHUNK) as reader:
                while chunk := reader.read(CHUNK):
                    written += len(chunk)
                    if limit is not None and written > limit:
                        raise ValueError(f"decompresses to more than its {limit} bytes")
                    digest.update(chunk)
                    target.write(chunk)
        except zstandard.ZstdError as error:
            raise ValueError(f"cannot decompress: {error}") from None
        target.flush()
        os.fsync(target.fileno())
    return digest.hexdigest()


@dataclass(frozen=True)
class SnapshotRequest:
    tier: str
    reason: str
    created_at: float
    app_version: str
    proceed: Proceed = _always


def _copy(source: Path, target: Path, proceed: Proceed) -> str | None:
    """The copy of ``source`` at ``target``: the plain one when every commit is in the main file
    (``stillcopy``: fsynced, and its sha256 returned), else the online one (None: not synced,
    not hashed). Raises SnapshotError."""
    if not source.exists():
        raise SnapshotError(f"no database at {source}")
    try:
        digest = copy_if_still(source, target, proceed)
        if digest is None:
            _copy_online(source, target, proceed)
    except CopyAbandoned:
        raise SnapshotError("abandoned (deadline reached or the watchdog is stopping)") from None
    except sqlite3.Error as error:
        raise SnapshotError(f"online backup failed: {type(error).__name__}: {error}") from None
    except OSError as error:
        raise SnapshotError(f"copying the database failed: {error.strerror or error}") from None
    _check(proceed)
    return digest


def copy_database(source: Path, target: Path, proceed: Proceed) -> str:
    """The copy of ``source`` at ``target`` (plain or online, :func:`_copy`), fsynced; its
    sha256. Raises SnapshotError."""
    digest = _copy(source, target, proceed)
    if digest is None:
        fsync_file(target)
        digest = sha256_of(target, proceed)
    _check(proceed)
    return digest


def examine(plain: Path, proceed: Proceed) -> tuple[str, str | None]:
    """The sha256 of a copy and what the full check found in it (None: sound), together: the
    check in worker processes, the hash meanwhile in a thread of ours. Raises OSError."""
    with ThreadPoolExecutor(1, thread_name_prefix="sha256") as hasher:
        hashing = hasher.submit(sha256_of, plain, proceed)
        problem = integrity_problem(plain, proceed)
        return hashing.result(), problem


COUNT_CACHE_KIB = 256
"""Counting reads each page of a table's smallest index once: a page cache only costs memory."""


def _rows_of(plain: Path, proceed: Proceed) -> dict[str, int]:
    connection = _open_frozen(plain, proceed)
    connection.execute(f"PRAGMA cache_size=-{COUNT_CACHE_KIB}")
    try:
        return count_rows(connection)
    except sqlite3.OperationalError as error:
        raise SnapshotError(f"counting rows: {error}") from None
    finally:
        connection.close()


def packed_path(plain: Path, backup_id: str) -> Path:
    return plain.with_name(f"{TMP_PREFIX}{backup_id}.db.zst")


@dataclass(frozen=True)
class _Made:
    """What the making found of a proven copy, for its manifest."""

    size: int
    digest: str
    rows: dict[str, int]
    data: Path
    data_digest: str


def _manifest(backup_id: str, request: SnapshotRequest, made: _Made, started: float) -> Manifest:
    compressed = made.data.name.endswith(".zst")
    return Manifest(
        id=backup_id,
        tier=request.tier,
        reason=request.reason,
        created_at=request.created_at,
        size_bytes=made.size,
        sha256=made.digest,
        file=f"{backup_id}.db.zst" if compressed else f"{backup_id}.db",
        file_size=made.data.stat().st_size,
        file_sha256=made.data_digest,
        compression="zstd" if compressed else None,
        rows=made.rows,
        sqlite_version=sqlite_version(),
        app_version=request.app_version,
        duration_s=round(time.monotonic() - started, 3),
        checked_sha256=made.digest,  # the full check passed on these very bytes
    )


def describe(
    plain: Path, backup_id: str, request: SnapshotRequest, digest: str, started: float
) -> tuple[Manifest, Path]:
    """The manifest of a proven copy (rows counted, compressed for its tier) and the data file
    to commit. Raises SnapshotError."""
    rows = _rows_of(plain, request.proceed)
    size = plain.stat().st_size
    data, data_digest = plain, digest
    if request.tier in COMPRESSED_TIERS:
        data = packed_path(plain, backup_id)
        try:
            data_digest = _compress(plain, data, request.proceed)
        except BaseException:
            data.unlink(missing_ok=True)
            raise
        plain.unlink()
    made = _Made(size, digest, rows, data, data_digest)
    return _manifest(backup_id, request, made, started), data


BESIDE_NICE = 5
"""How much further the work beside the check (hash, counts, compression) yields: the check of
the biggest table is what the snapshot waits for, and should have a core of its own."""


def _yield_to_the_check() -> None:
    with contextlib.suppress(OSError):
        os.nice(BESIDE_NICE)  # on Linux, this thread's own priority


def build(
    source: Path, plain: Path, backup_id: str, request: SnapshotRequest
) -> tuple[Manifest, Path]:
    """The whole making of a verified backup file at ``plain`` (``.zst`` beside it for a
    compressed tier), in this process: the maker worker's (``data.maker``), or a command's with
    no stack running. The check threads start with the copy; once it is made, its fsync, sha256
    (known already of a plain copy), row counts and compression run in threads beside the
    check, each reading the copy once. Raises SnapshotError, OSError; the caller removes the
    temporaries."""
    started = time.monotonic()
    # The check's shares run in threads of this process: no process more than there are cores.
    checkers = Checkers(plain, True, workers_for(os.cpu_count()), threads=True)
    try:
        known = _copy(source, plain, request.proceed)
    except BaseException:
        checkers.stop()
        raise
    failed = threading.Event()

    def going() -> bool:
        return not failed.is_set() and request.proceed()

    def hash_it() -> str:
        return known if known is not None else sha256_of(plain, going)

    packed = packed_path(plain, backup_id)
    with ThreadPoolExecutor(4, "snapshot", initializer=_yield_to_the_check) as pool:
        synced = pool.submit(fsync_file, plain)  # a plain copy is synced: this returns at once
        hashed = pool.submit(hash_it)
        counted = pool.submit(_rows_of, plain, going)
        packing = None
        if request.tier in COMPRESSED_TIERS:
            packing = pool.submit(_compress, plain, packed, going)
        try:
            problem = integrity_problem(plain, request.proceed, checkers)
            if problem:
                raise SnapshotError(f"the copy failed integrity_check: {problem}")
            synced.result()
            size, digest = plain.stat().st_size, hashed.result()
            data, data_digest = (plain, digest) if packing is None else (packed, packing.result())
            made = _Made(size, digest, counted.result(), data, data_digest)
        except BaseException:
            failed.set()
            raise
    if packing is not None:
        plain.unlink()
    return _manifest(backup_id, request, made, started), made.data


@dataclass(frozen=True)
class Verdict:
    ok: bool
    detail: str


def verify_stored_file(backup: Backup) -> Verdict:
    """The stored file is still the one the manifest describes (exists, sha256 matches)."""
    if not backup.data_path.exists():
        return Verdict(False, f"data file {backup.data_path.name} is missing")
    if sha256_of(backup.data_path) != backup.manifest.file_sha256:
        return Verdict(False, "sha256 mismatch: stored file is not what was backed up")
    return Verdict(True, "sha256 ok")


def verify_backup(backup: Backup, scratch_dir: Path) -> Verdict:
    """Re-hash the stored file, then run integrity_check on the database it holds."""
    manifest = backup.manifest
    stored = verify_stored_file(backup)
    if not stored.ok:
        return stored
    if manifest.compression is None:
        problem = integrity_problem(backup.data_path)
        return Verdict(problem is None, problem or "ok")
    scratch_dir.mkdir(parents=True, exist_ok=True)
    plain = scratch_dir / f".verify-{manifest.id}.db"
    try:
        try:
            digest = decompress(backup.data_path, plain)
        except ValueError as error:
            return Verdict(False, str(error))
        if digest != manifest.sha256:
            return Verdict(False, "decompressed database does not match its sha256")
        problem = integrity_problem(plain)
        return Verdict(problem is None, problem or "ok")
    finally:
        plain.unlink(missing_ok=True)


def materialize(backup: Backup, target: Path) -> str:
    """The plain database of ``backup`` at ``target`` (copied or decompressed), fsynced; returns
    the sha256 of the bytes written (compare it with the manifest's ``sha256``): of a copy, as
    read back from ``target`` (``hashcopy``)."""
    if backup.manifest.compression == "zstd":
        return decompress(backup.data_path, target, limit=backup.manifest.size_bytes)
    return copy_hashed(backup.data_path, target)
