"""A backup in two halves (``rules.deploy``): the copy now, staged unverified; its proof later,
after which the tier counts it — or the copy is set aside."""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from watchdog.data.catalogue import Backup, Catalogue, Staged, new_backup_id
from watchdog.data.snapshot import (
    Proceed,
    SnapshotError,
    SnapshotRequest,
    copy_database,
    describe,
    examine,
    sha256_of,
)
from watchdog.rules.deploy import judge

log = logging.getLogger(__name__)


def stage_copy(source: Path, catalogue: Catalogue, request: SnapshotRequest) -> Staged:
    """The online copy of ``source``, fsynced and hashed, kept unverified (no tier counts it).
    Raises SnapshotError; nothing is left behind then."""
    started = time.monotonic()
    backup_id = new_backup_id(request.tier, request.created_at, secrets.token_hex(3))
    plain_tmp = catalogue.temporary_path(request.tier, backup_id, ".db")
    try:
        copy_database(source, plain_tmp, request.proceed)
        staged = Staged(
            id=backup_id,
            tier=request.tier,
            reason=request.reason,
            created_at=request.created_at,
            sha256=sha256_of(plain_tmp, request.proceed),
            size_bytes=plain_tmp.stat().st_size,
            app_version=request.app_version,
            copy_seconds=round(time.monotonic() - started, 3),
        )
        catalogue.stage(staged, plain_tmp)
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
