"""Writing the branch: one backup packed into objects of the cache, the chain rebuilt, pushed.

A push rebuilds the chain from the kept backups' trees (already on the server, so only the new
backup travels) plus the new one and force-pushes it with a lease: history never grows past
``keep`` commits, and a push that raced another writer is rejected rather than lost. Everything
is plumbing (``hash-object``, ``mktree``, ``commit-tree``, ``update-ref``): no working tree.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path

from pyrage import x25519

from conf.units import MIB
from watchdog.data.catalogue import Backup
from watchdog.offsite.cache import CACHE_REF, ensure_cache, locked, prune, scratch
from watchdog.offsite.errors import OffsiteError
from watchdog.offsite.fetch import fetch_branch
from watchdog.offsite.git import BareRepo, Remote
from watchdog.offsite.index import (
    OffsiteEntry,
    backup_tree,
    commit_tree,
    index_document,
    load_chain,
)
from watchdog.offsite.package import pack

log = logging.getLogger(__name__)

PUSHED = ("+", "*", " ", "=")
"""``git push --porcelain`` flags of a ref that is now what we pushed."""


def push_backup(
    remote: Remote,
    cache: BareRepo,
    backup: Backup,
    *,
    keep: int,
    recipient: x25519.Recipient | None,
    part_size: int,
    work_dir: Path,
) -> OffsiteEntry:
    """Put one verified backup on the branch (idempotent), keeping the newest ``keep``."""
    started = time.monotonic()
    with locked(cache, timeout=remote.git.timeout):
        ensure_cache(cache)
        tip = fetch_branch(remote, cache, CACHE_REF, depth=keep, what="reading the offsite branch")
        if tip is None:
            cache.run(["update-ref", "-d", CACHE_REF], what="offsite cache", check=False)
        chain = load_chain(cache, tip, remote.branch) if tip else []
        for entry in chain:
            if entry.id == backup.id:
                log.info("offsite: backup %s is already on the branch", backup.id)
                return entry
        try:
            new_entry = _store_backup(cache, backup, recipient, part_size, work_dir)
            kept = chain[-(keep - 1) :] if keep > 1 else []
            kept = [entry for entry in kept if cache.has_object(entry.tree)]
            new_tip, entries = _build_chain(cache, remote.branch, [*kept, new_entry])
            _push(remote, cache, new_tip, expected=tip)
            cache.run(["update-ref", CACHE_REF, new_tip], what="offsite cache")
        finally:
            # what left the chain, or what a failed push left behind (age output differs on
            # every attempt, so failed attempts must not pile up)
            prune(cache)
    pushed = entries[-1]
    log.info(
        "offsite: backup %s pushed to branch %s: %d part(s), %.2f MB stored, %d kept, %.1f s",
        pushed.id,
        remote.branch,
        pushed.parts,
        pushed.stored_size / MIB,
        len(entries),
        time.monotonic() - started,
    )
    return pushed


def _store_backup(
    cache: BareRepo,
    backup: Backup,
    recipient: x25519.Recipient | None,
    part_size: int,
    work_dir: Path,
) -> OffsiteEntry:
    """Pack the backup into objects of the cache: its tree and the entry describing it."""
    with scratch(work_dir, "push-") as staging:
        package, paths = pack(
            backup.data_path,
            compressed=backup.manifest.compression == "zstd",
            recipient=recipient,
            folder=staging,
            part_size=part_size,
        )
        parts = []
        for part, path in zip(package.parts, paths, strict=True):
            parts.append((part.name, cache.hash_file(path)))
            path.unlink()  # a part at a time: the staging folder never holds the whole package
        manifest_blob = cache.hash_bytes(backup.manifest.to_json().encode())
        package_blob = cache.hash_bytes(json.dumps(package.to_dict(), indent=2).encode())
        tree = cache.mktree(backup_tree(parts, manifest_blob, package_blob))
    return OffsiteEntry.stored(backup.manifest, package, tree)


def _build_chain(
    cache: BareRepo, branch: str, entries: list[OffsiteEntry]
) -> tuple[str, list[OffsiteEntry]]:
    """Commits oldest → newest, each tree holding its backup and the index so far."""
    parent: str | None = None
    built: list[OffsiteEntry] = []
    for entry in entries:
        index_blob = cache.hash_bytes(index_document(branch, built, entry))
        tree = cache.mktree(commit_tree(index_blob, entry))
        stamp = f"{int(entry.created_at)} +0000"
        args = ["commit-tree", tree, "-m", f"offsite backup {entry.id} ({entry.tier})"]
        if parent is not None:
            args += ["-p", parent]
        commit = cache.run(
            args,
            what="offsite commit",
            extra_env={"GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp},
        ).text
        built.append(dataclasses.replace(entry, commit=commit))
        parent = commit
    assert parent is not None
    return parent, built


def _push(remote: Remote, cache: BareRepo, new_tip: str, expected: str | None) -> None:
    """Force-push ``new_tip`` if the branch is still at ``expected`` (None: still absent)."""
    ref = remote.ref
    result = cache.run(
        [
            "push",
            "--porcelain",
            f"--force-with-lease={ref}:{expected or ''}",
            remote.url,
            f"{new_tip}:{ref}",
        ],
        what="pushing to the offsite branch",
        network=True,
        check=False,
    )
    status = None
    for line in result.text.splitlines():
        fields = line.split("\t")
        if len(fields) >= 2 and fields[1].endswith(f":{ref}"):
            status = fields
    if status is not None and status[0] in PUSHED and result.returncode == 0:
        return
    git = remote.git
    if status is not None and status[0] == "!":
        summary = git.scrub(status[2] if len(status) > 2 else "rejected")
        remote_lines = [
            line.strip()
            for line in git.scrub(result.stderr).splitlines()
            if line.strip().startswith("remote:")
        ]
        detail = f"; {' | '.join(remote_lines[-3:])[-300:]}" if remote_lines else ""
        raise OffsiteError(
            f"the git server rejected the push to branch {remote.branch}: {summary}{detail}",
            "rejected",
        )
    raise git.failure(f"pushing to the offsite branch {remote.branch}", result)
