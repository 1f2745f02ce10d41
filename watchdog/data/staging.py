"""A backup in two halves (``rules.deploy``): the copy now, staged unverified; its proof later,
after which the tier counts it — or the copy is set aside.

Before the bot's launch nobody writes the database, and after a clean stop its ``-wal`` is
empty: every commit is in the main file. The copy is then a plain one, hashed as it goes (no
online backup, no second read for the hash), and it can be made while the start-up
``quick_check`` runs (:func:`copy_early`, on the second core); :func:`stage_copy` takes that
copy over if the file is still exactly the one copied (size, mtime, inode, change counter,
``-wal``), else makes the online copy as ever.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from watchdog.data.catalogue import Backup, Catalogue, Staged, new_backup_id
from watchdog.data.fs import free_bytes
from watchdog.data.hashcopy import CopyAbandoned
from watchdog.data.snapshot import (
    Proceed,
    SnapshotError,
    SnapshotRequest,
    copy_database,
    describe,
    examine,
)
from watchdog.data.stillcopy import plain_copy, quiet, same_file
from watchdog.data.workerproc import CHECK_NICE
from watchdog.rules.deploy import judge
from watchdog.rules.startup import FileFacts

log = logging.getLogger(__name__)


EARLY_SPARE_BYTES = 256 * 1024 * 1024
"""Free space an early copy leaves at least, besides a second file's size (it runs before the
catalogue makes room by retention: a tight disk gets the usual staging instead)."""
EARLY_COPY_NICE = CHECK_NICE + 5
"""The early copy runs beside the start-up check, which is what the launch waits for (a whole
``quick_check`` of 1 GB takes longer than the copy): its threads (the kernel's copy, the hash)
yield the check its core, and take the other."""


def early_plain_copy(source: Path, target: Path, proceed: Proceed) -> str:
    """The plain copy of a file nobody writes (``stillcopy.plain_copy``), yielding the start-up
    check its core. Returns the copy's sha256. Raises OSError, SnapshotError."""
    try:
        return plain_copy(source, target, proceed, nice=EARLY_COPY_NICE)
    except CopyAbandoned:
        raise SnapshotError("the copy was abandoned (stop requested)") from None


@dataclass(frozen=True)
class EarlyCopy:
    source: Path
    path: Path
    facts: FileFacts
    sha256: str
    seconds: float


_early: dict[Path, EarlyCopy] = {}
_early_lock = threading.Lock()


def copy_early(source: Path, catalogue: Catalogue, tier: str, proceed: Proceed) -> bool:
    """A plain copy of ``source`` made ahead of :func:`stage_copy` (during the start-up check),
    kept under a temporary name (an interrupted start's leftover is removed by the catalogue's
    clean-up). False when the file is not quiet (then the online copy runs at staging)."""
    started = time.monotonic()
    facts = quiet(source)
    if facts is None:
        return False
    path = catalogue.temporary_path(tier, f"early-{secrets.token_hex(3)}", ".db")
    if free_bytes(path.parent) < 2 * facts.size + EARLY_SPARE_BYTES:
        log.info("no early deploy copy: the disk is tight (the staging makes room first)")
        return False
    try:
        digest = early_plain_copy(source, path, proceed)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    copy = EarlyCopy(source, path, facts, digest, round(time.monotonic() - started, 3))
    with _early_lock:
        old = _early.pop(source, None)
        _early[source] = copy
    if old is not None:
        old.path.unlink(missing_ok=True)
    return True


def discard_early(source: Path) -> None:
    with _early_lock:
        copy = _early.pop(source, None)
    if copy is not None:
        copy.path.unlink(missing_ok=True)


def _take_early(source: Path) -> EarlyCopy | None:
    """The early copy of ``source`` if the file is still exactly what was copied."""
    with _early_lock:
        copy = _early.pop(source, None)
    if copy is None:
        return None
    if not same_file(copy.facts, quiet(source)) or not copy.path.is_file():
        copy.path.unlink(missing_ok=True)
        log.info("the early copy of %s is stale (the file changed): copying again", source)
        return None
    return copy


def stage_copy(source: Path, catalogue: Catalogue, request: SnapshotRequest) -> Staged:
    """The copy of ``source`` — taken over from :func:`copy_early`, else the online one —
    fsynced and hashed, kept unverified (no tier counts it). Raises SnapshotError; nothing is
    left behind then."""
    started = time.monotonic()
    backup_id = new_backup_id(request.tier, request.created_at, secrets.token_hex(3))
    plain_tmp = catalogue.temporary_path(request.tier, backup_id, ".db")
    try:
        early = _take_early(source)
        if early is not None:
            os.replace(early.path, plain_tmp)
            digest, seconds = early.sha256, early.seconds
        else:  # the bot may be running (a follower that came to lead): the online copy
            digest = copy_database(source, plain_tmp, request.proceed)
            seconds = round(time.monotonic() - started, 3)
        staged = Staged(
            id=backup_id,
            tier=request.tier,
            reason=request.reason,
            created_at=request.created_at,
            sha256=digest,
            size_bytes=plain_tmp.stat().st_size,
            app_version=request.app_version,
            copy_seconds=seconds,
        )
        catalogue.stage(staged, plain_tmp)
    except OSError as error:
        plain_tmp.unlink(missing_ok=True)
        raise SnapshotError(f"copy failed: {error.strerror or error}") from None
    except BaseException:
        plain_tmp.unlink(missing_ok=True)
        raise
    return staged


@dataclass(frozen=True)
class Proven:
    staged: Staged
    backup: Backup | None
    """The backup it became; None when it was set aside."""
    detail: str
    set_aside: Path | None = None


def prove_staged(catalogue: Catalogue, staged: Staged, proceed: Proceed) -> Proven:
    """The staged copy's proof: still the bytes copied, and the full check passes on them; then
    it is committed to its tier, else set aside. Raises SnapshotError only when abandoned."""
    started = time.monotonic() - staged.copy_seconds  # the duration: the copy, then its proof
    request = SnapshotRequest(
        staged.tier, staged.reason, staged.created_at, staged.app_version, proceed
    )
    data = catalogue.staged_paths(staged.tier, staged.id)[0]
    digest: str | None = None
    problem: str | None = None
    if data.exists():
        try:
            digest, problem = examine(data, request.proceed)
        except OSError as error:
            log.error("staged copy %s cannot be read: %s", staged.id, error)
    proof = judge(staged.sha256, digest, problem, missing=not data.exists())
    if proof.counts and digest is not None:
        try:
            manifest, final = describe(data, staged.id, request, digest, started)
        except SnapshotError as error:
            if "abandoned" in str(error):
                raise
            proof = judge(staged.sha256, digest, str(error))
        else:
            backup = catalogue.commit(manifest, final)
            catalogue.unstage(staged)
            return Proven(staged, backup, proof.why)
    return Proven(staged, None, proof.why, catalogue.set_aside_staged(staged, proof.why))
