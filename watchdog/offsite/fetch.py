"""Reading the branch: authenticating its packages, and restoring one as a verified database.

Every read fetches into a fresh temporary bare repository (depth 1, one branch) and never trusts
the cache, so a new machine restores with nothing but the settings. The tip holds every
package's ``package.json`` and encrypted manifest, so one shallow fetch authenticates and orders
the whole chain; an older backup's parts come with its own commit, fetched by hash.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from watchdog.data.catalogue import Manifest
from watchdog.data.fs import fsync_dir
from watchdog.data.pgdump import check_dump_file, is_dump
from watchdog.data.snapshot import integrity_problem, sha256_of
from watchdog.offsite.cache import scratch
from watchdog.offsite.errors import OffsiteError
from watchdog.offsite.git import BareRepo, Remote, Result
from watchdog.offsite.index import BACKUP, IndexEntry, OffsiteEntry, RefusedPackage, load_chain
from watchdog.offsite.package import ensure_room, unpack
from watchdog.offsite.verify import Keys, Opened, Refusal, newest_first, open_package

log = logging.getLogger(__name__)

FETCH_REF = "refs/offsite/tip"
TEMPORARY_PREFIX = ".tmp-offsite-"
"""Beside ``dest`` while a restore writes it (``watchdog.data.restore`` cleans up leftovers)."""


@dataclass(frozen=True)
class Candidates:
    """Every package on the branch: ``entries`` usable, newest first (by the authenticated
    date; future-dated ones last), and ``refused`` with the reason each one is not used."""

    entries: tuple[OffsiteEntry, ...]
    refused: tuple[RefusedPackage, ...]


def fetch(remote: Remote, repo: BareRepo, source: str, *, depth: int, what: str) -> Result:
    """The one ``git fetch``: ``source`` (a refspec, or a commit by its hash) from the remote into
    ``repo``, ``depth`` commits deep, no tags, no FETCH_HEAD. Bounded by the network timeout
    (raises OffsiteError on timeout); any other failure is the caller's to judge."""
    return repo.run(
        [
            "fetch",
            "--quiet",
            "--no-tags",
            "--no-write-fetch-head",
            f"--depth={depth}",
            "--end-of-options",  # a commit read from the branch is never an option
            remote.url,
            source,
        ],
        what=what,
        network=True,
        check=False,
    )


def fetch_branch(remote: Remote, repo: BareRepo, ref: str, *, depth: int, what: str) -> str | None:
    """The branch's last ``depth`` commits into ``repo`` as ``ref``: its tip, or None when the
    branch does not exist. Raises OffsiteError."""
    result = fetch(remote, repo, f"+{remote.ref}:{ref}", depth=depth, what=what)
    if result.returncode != 0:
        if "couldn't find remote ref" in result.stderr:
            return None
        raise remote.git.failure(what, result)
    return repo.rev_parse(ref)


@contextlib.contextmanager
def _branch(
    remote: Remote, work_dir: Path
) -> Iterator[tuple[BareRepo, str | None, list[IndexEntry]]]:
    """A temporary repository holding the branch's tip, the tip, and the chain it lists."""
    with scratch(work_dir, "fetch-") as folder:
        repo = BareRepo(remote.git, folder / "repo.git")
        remote.git.run(["init", "--quiet", "--bare", str(repo.path)], what="temporary repository")
        tip = fetch_branch(remote, repo, FETCH_REF, depth=1, what="fetching the offsite branch")
        yield repo, tip, load_chain(repo, tip, remote.branch) if tip is not None else []


def _scan(repo: BareRepo, tip: str, chain: list[IndexEntry], keys: Keys, now: float) -> Candidates:
    entries, refused = [], []
    for index in chain:
        if index.kind != BACKUP:
            continue  # a journal package: ``offsite.journal`` reads those, as journals only
        try:
            entries.append(open_package(repo, f"{tip}:{index.id}", index, keys, now).entry)
        except Refusal as refusal:
            refused.append(RefusedPackage(index.id, index.commit, refusal.kind, refusal.reason))
            log.warning("offsite: package %s refused (%s): %s", index.id, refusal.kind, refusal)
        except (OffsiteError, OSError):
            raise
        except Exception as error:  # input we did not foresee: refused, never a crash
            reason = f"cannot be read ({type(error).__name__})"
            refused.append(RefusedPackage(index.id, index.commit, "corrupt", reason))
            log.warning("offsite: package %s refused: %s", index.id, reason)
    return Candidates(tuple(newest_first(entries)), tuple(refused))


def scan_branch(remote: Remote, work_dir: Path, keys: Keys, now: float | None = None) -> Candidates:
    """Every package on the branch, authenticated or refused (empty when there is no branch)."""
    if keys.mac is None and not keys.allow_unauthenticated:
        raise OffsiteError("BACKUP_AGE_KEY is needed to authenticate offsite backups", "key")
    with _branch(remote, work_dir) as (repo, tip, chain):
        if tip is None:
            return Candidates((), ())
        return _scan(repo, tip, chain, keys, time.time() if now is None else now)


def fetch_entry(
    remote: Remote,
    work_dir: Path,
    entry_id: str | None,
    keys: Keys,
    dest: Path,
    now: float | None = None,
) -> Manifest:
    """Restore backup ``entry_id`` (None: the newest) as a plain database at ``dest``: what that
    proves is said in :meth:`watchdog.offsite.store.OffsiteStore.fetch`."""
    now = time.time() if now is None else now
    if keys.mac is None and not keys.allow_unauthenticated:
        raise OffsiteError(
            "offsite backups are authenticated and encrypted: BACKUP_AGE_KEY is needed to "
            "restore them",
            "key",
        )
    with _branch(remote, work_dir) as (repo, tip, chain):
        if tip is None:
            raise OffsiteError(
                f"no offsite backups: branch {remote.branch} does not exist", "not_found"
            )
        if not chain:
            raise OffsiteError(f"no offsite backups on branch {remote.branch}", "not_found")
        found = _scan(repo, tip, chain, keys, now)
        entry = _choose(found, entry_id, remote.branch)
        if not repo.has_object(entry.commit):
            _fetch_older(remote, repo, entry, chain)
        index = next(item for item in chain if item.id == entry.id)
        try:
            opened = open_package(repo, f"{entry.commit}:{entry.id}", index, keys, now)
        except Refusal as refusal:
            raise OffsiteError(f"offsite backup {entry.id}: {refusal}", refusal.kind) from None
        if opened.entry.sha256 != entry.sha256 or opened.manifest is None:
            raise OffsiteError(
                f"offsite backup {entry.id}: its own commit holds another package", "corrupt"
            )
        return _restore(repo, opened, keys, dest)


def _choose(found: Candidates, entry_id: str | None, branch: str) -> OffsiteEntry:
    if entry_id is None:
        for entry in found.entries:
            if not entry.future:
                return entry
        refused = "; ".join(f"{r.id}: {r.reason}" for r in found.refused)
        future = ", ".join(entry.id for entry in found.entries)
        detail = (f" (refused: {refused})" if refused else "") + (
            f" (dated in the future, name one to use it: {future})" if future else ""
        )
        kinds = {r.kind for r in found.refused}
        kind = kinds.pop() if len(kinds) == 1 and not found.entries else "not_found"
        raise OffsiteError(f"no usable offsite backup on branch {branch}{detail}", kind)
    for entry in found.entries:
        if entry.id == entry_id:
            return entry
    for refused_package in found.refused:
        if refused_package.id == entry_id:
            raise OffsiteError(
                f"offsite backup {entry_id} is refused: {refused_package.reason}",
                refused_package.kind,
            )
    known = ", ".join(entry.id for entry in found.entries)
    raise OffsiteError(
        f"no offsite backup {entry_id} on branch {branch} (there are: {known})", "not_found"
    )


def _fetch_older(
    remote: Remote, repo: BareRepo, entry: OffsiteEntry, chain: list[IndexEntry]
) -> None:
    """An older backup: its commit by hash (depth 1), or else deepen the branch to reach it."""
    result = fetch(remote, repo, entry.commit, depth=1, what="fetching an older offsite backup")
    if result.returncode == 0 and repo.has_object(entry.commit):
        return
    position = len(chain) - [item.id for item in chain].index(entry.id)
    fetch_branch(remote, repo, FETCH_REF, depth=position, what="fetching the offsite branch")
    if not repo.has_object(entry.commit):
        raise OffsiteError(
            f"offsite backup {entry.id} is no longer on branch {remote.branch} "
            "(it changed while fetching); try again",
            "not_found",
        )


def _part_blobs(opened: Opened) -> list[str]:
    """The parts' blobs, each of the size the authenticated package gives (checked in the
    tree listing, before a byte of them is read)."""
    assert opened.package is not None
    blobs = []
    for part in opened.package.parts:
        found = opened.listing.get(part.name)
        if found is None or found[1] != part.size:
            raise OffsiteError(
                f"offsite backup {opened.entry.id}: part {part.name} is missing or not of its size",
                "corrupt",
            )
        blobs.append(found[0])
    return blobs


def _restore(repo: BareRepo, opened: Opened, keys: Keys, dest: Path) -> Manifest:
    entry, manifest, package = opened.entry, opened.manifest, opened.package
    assert manifest is not None and package is not None
    blobs = _part_blobs(opened)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f"{TEMPORARY_PREFIX}{secrets.token_hex(4)}-{dest.name}"
    try:
        ensure_room(dest.parent, manifest.size_bytes, f"restoring backup {entry.id}")
        with scratch(repo.path.parent, "parts-") as folder:
            ensure_room(folder, package.stored_size, f"reading the parts of {entry.id}")
            paths = []
            for part, blob in zip(package.parts, blobs, strict=True):
                path = folder / part.name  # a name checked against the part pattern
                repo.run(["cat-file", "blob", blob], what="reading a part", stdout_path=path)
                paths.append(path)
            unpack(entry.id, package, paths, keys.identity, tmp, size_limit=manifest.size_bytes)
        _verify(entry.id, tmp, manifest)
        os.replace(tmp, dest)
        fsync_dir(dest.parent)
    except OSError as error:
        raise OffsiteError(
            f"offsite backup {entry.id}: writing {dest.name} failed: {error.strerror or error}",
            "io",
        ) from None
    finally:
        tmp.unlink(missing_ok=True)
    log.info("offsite: backup %s restored to %s", entry.id, dest)
    return manifest


def _verify(backup_id: str, path: Path, manifest: Manifest) -> None:
    """The one check of a restored database: the manifest's bytes, and a sound SQLite file
    (a PostgreSQL dump: one ``pg_restore`` reads; its proof is a restore into a database)."""
    if is_dump(manifest):
        problem = check_dump_file(path, manifest)
        if problem:
            raise OffsiteError(f"offsite backup {backup_id}: {problem}", "corrupt")
        return
    if path.stat().st_size != manifest.size_bytes or sha256_of(path) != manifest.sha256:
        raise OffsiteError(
            f"offsite backup {backup_id}: the restored database does not match its sha256",
            "corrupt",
        )
    problem = integrity_problem(path)
    if problem:
        raise OffsiteError(
            f"offsite backup {backup_id}: the restored database fails integrity_check: {problem}",
            "corrupt",
        )
