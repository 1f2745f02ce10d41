"""Reading the branch: listing its backups and restoring one as a plain, verified database.

Restores fetch into a fresh temporary bare repository (depth 1, one branch) and never trust the
cache, so a new machine restores with nothing but the settings.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

from pyrage import x25519

from watchdog.data.catalogue import Manifest
from watchdog.data.fs import fsync_dir
from watchdog.data.snapshot import integrity_problem, sha256_of
from watchdog.offsite.cache import scratch
from watchdog.offsite.errors import OffsiteError
from watchdog.offsite.git import BareRepo, Remote, Result
from watchdog.offsite.index import OffsiteEntry, load_backup, load_chain
from watchdog.offsite.package import unpack

log = logging.getLogger(__name__)

FETCH_REF = "refs/offsite/tip"
TEMPORARY_PREFIX = ".tmp-offsite-"
"""Beside ``dest`` while a restore writes it (``watchdog.data.restore`` cleans up leftovers)."""


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
def _branch(remote: Remote, work_dir: Path) -> Iterator[tuple[BareRepo, list[OffsiteEntry] | None]]:
    """A temporary repository holding the branch's tip, and the chain it lists (None: no branch)."""
    with scratch(work_dir, "fetch-") as folder:
        repo = BareRepo(remote.git, folder / "repo.git")
        remote.git.run(["init", "--quiet", "--bare", str(repo.path)], what="temporary repository")
        tip = fetch_branch(remote, repo, FETCH_REF, depth=1, what="fetching the offsite branch")
        yield repo, load_chain(repo, tip, remote.branch) if tip is not None else None


def list_entries(remote: Remote, work_dir: Path) -> list[OffsiteEntry]:
    """The backups on the branch, newest first ([] when the branch does not exist yet)."""
    with _branch(remote, work_dir) as (_, chain):
        entries = chain or []
    return sorted(entries, key=lambda entry: (entry.created_at, entry.id), reverse=True)


def fetch_entry(
    remote: Remote,
    work_dir: Path,
    entry_id: str | None,
    identity: x25519.Identity | None,
    dest: Path,
) -> Manifest:
    """Restore backup ``entry_id`` (None: the newest) as a plain database at ``dest``, verified
    once (parts, decryption, decompression, sha256 and size, integrity_check): what that proves
    and what it does not is said in :meth:`watchdog.offsite.store.OffsiteStore.fetch`."""
    with _branch(remote, work_dir) as (repo, chain):
        if chain is None:
            raise OffsiteError(
                f"no offsite backups: branch {remote.branch} does not exist", "not_found"
            )
        if not chain:
            raise OffsiteError(f"no offsite backups on branch {remote.branch}", "not_found")
        entry = _choose(chain, entry_id, remote.branch)
        if not repo.has_object(entry.commit):
            _fetch_older(remote, repo, entry, chain)
        return _restore(repo, entry, identity, dest)


def _choose(chain: list[OffsiteEntry], entry_id: str | None, branch: str) -> OffsiteEntry:
    if entry_id is None:
        return max(chain, key=lambda item: (item.created_at, item.id))
    for item in chain:
        if item.id == entry_id:
            return item
    known = ", ".join(item.id for item in reversed(chain))
    raise OffsiteError(
        f"no offsite backup {entry_id} on branch {branch} (there are: {known})", "not_found"
    )


def _fetch_older(
    remote: Remote, repo: BareRepo, entry: OffsiteEntry, chain: list[OffsiteEntry]
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


def _restore(
    repo: BareRepo, entry: OffsiteEntry, identity: x25519.Identity | None, dest: Path
) -> Manifest:
    manifest, package, blobs = load_backup(repo, entry)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f"{TEMPORARY_PREFIX}{secrets.token_hex(4)}-{dest.name}"
    try:
        with scratch(repo.path.parent, "parts-") as folder:
            paths = []
            for part, blob in zip(package.parts, blobs, strict=True):
                path = folder / part.name
                repo.run(["cat-file", "blob", blob], what="reading a part", stdout_path=path)
                paths.append(path)
            unpack(entry.id, package, paths, identity, tmp)
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
    """The one check of a restored database: the manifest's bytes, and a sound SQLite file."""
    if sha256_of(path) != manifest.sha256 or path.stat().st_size != manifest.size_bytes:
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
