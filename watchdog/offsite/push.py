"""Writing the branch: one backup packed into objects of the cache, the chain rebuilt, pushed.

A push rebuilds the chain from the kept backups' trees (already on the server, so only the new
backup travels) plus the new one and force-pushes it with a lease, so a push that raced another
writer is rejected rather than lost. What is kept: the newest ``keep`` packages this key made
(all of them while ``rotate`` is off, after a fresh start), and every package it cannot
authenticate — forged, damaged or older than MACs — is carried along untouched: we never delete
what we cannot judge. Everything is plumbing (``hash-object``, ``mktree``, ``commit-tree``,
``update-ref``): no working tree.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from pathlib import Path

from pyrage import x25519

from conf.units import MIB
from watchdog.data.catalogue import Backup
from watchdog.data.pgdump import is_dump
from watchdog.offsite.auth import MacKey, seal
from watchdog.offsite.cache import CACHE_REF, ensure_cache, locked, prune, scratch
from watchdog.offsite.errors import OffsiteError
from watchdog.offsite.fetch import fetch_branch
from watchdog.offsite.git import BareRepo, Remote
from watchdog.offsite.index import (
    IndexEntry,
    OffsiteEntry,
    RefusedPackage,
    backup_tree,
    commit_tree,
    index_document,
    load_chain,
    meta_tree,
)
from watchdog.offsite.journal_format import covered_journals
from watchdog.offsite.package import (
    BACKUP_KINDS,
    JOURNAL_KIND,
    MANIFEST_BLOB,
    PACKAGE_KIND,
    PGDUMP_KIND,
    Package,
    Part,
    encrypt_bytes,
    pack,
)
from watchdog.offsite.verify import Keys, Refusal, kind_of, open_package, refusal_of

log = logging.getLogger(__name__)

PUSHED = ("+", "*", " ", "=")
"""``git push --porcelain`` flags of a ref that is now what we pushed."""


@dataclasses.dataclass(frozen=True)
class Pushed:
    entry: OffsiteEntry
    kept: int
    """Packages on the branch after the push (ours and refused ones)."""
    refused: tuple[RefusedPackage, ...]
    """Packages on the branch this key did not make (or cannot judge), carried untouched."""


def push_backup(
    remote: Remote,
    cache: BareRepo,
    backup: Backup,
    *,
    keep: int,
    rotate: bool,
    keys: Keys,
    recipient: x25519.Recipient,
    part_size: int,
    work_dir: Path,
) -> Pushed:
    """Put one verified backup on the branch (idempotent)."""
    assert keys.mac is not None
    started = time.monotonic()
    with locked(cache, timeout=remote.git.timeout):
        ensure_cache(cache)
        tip = fetch_branch(remote, cache, CACHE_REF, depth=keep, what="reading the offsite branch")
        if tip is None:
            cache.run(["update-ref", "-d", CACHE_REF], what="offsite cache", check=False)
        chain = load_chain(cache, tip, remote.branch) if tip else []
        if tip and len(chain) > keep:  # refused or held packages beyond keep: reach them all
            tip = fetch_branch(
                remote, cache, CACHE_REF, depth=len(chain), what="reading the offsite branch"
            )
            chain = load_chain(cache, tip, remote.branch) if tip else []
        present = [entry for entry in chain if cache.has_object(entry.tree)]
        refused = {e.id: r for e in present if (r := refusal_of(cache, e.tree, keys.mac))}
        refusals = tuple(_refused(e, refused[e.id]) for e in present if e.id in refused)
        for entry in present:
            if entry.id == backup.id:
                return _already_there(cache, entry, refused, refusals, keys, len(chain))
        try:
            new_entry, index_entry = _store_backup(
                cache, backup, recipient, keys.mac, part_size, work_dir
            )
            kinds = {e.id: kind_of(cache, e.tree, keys.mac) for e in present if e.id not in refused}
            ours = [e for e in present if kinds.get(e.id) in BACKUP_KINDS]
            dropped = set() if not rotate else {e.id for e in ours[: max(0, len(ours) - keep + 1)]}
            if rotate:
                journals = [e for e in present if kinds.get(e.id) == JOURNAL_KIND]
                dropped |= covered_journals(
                    cache, journals, keys, backup.manifest.created_at, time.time()
                )
            kept = [entry for entry in present if entry.id not in dropped]
            stamps = {e.id: _commit_time(cache, e.commit) for e in kept}
            stamps[backup.id] = int(backup.manifest.created_at)
            new_tip, built = _build_chain(cache, remote.branch, [*kept, index_entry], stamps)
            _push(remote, cache, new_tip, expected=tip)
            cache.run(["update-ref", CACHE_REF, new_tip], what="offsite cache")
        finally:
            # what left the chain, or what a failed push left behind (age output differs on
            # every attempt, so failed attempts must not pile up)
            prune(cache)
    pushed = dataclasses.replace(new_entry, commit=built[-1].commit)
    log.info(
        "offsite: backup %s pushed to branch %s: %d part(s), %.2f MB stored, %d kept%s%s, %.1f s",
        pushed.id,
        remote.branch,
        pushed.parts,
        pushed.stored_size / MIB,
        len(built),
        "" if rotate else " (rotation held after a fresh start)",
        f", {len(refused)} refused package(s) left untouched" if refused else "",
        time.monotonic() - started,
    )
    return Pushed(pushed, len(built), refusals)


def _refused(entry: IndexEntry, refusal: Refusal) -> RefusedPackage:
    return RefusedPackage(entry.id, entry.commit, refusal.kind, refusal.reason)


def _already_there(
    cache: BareRepo,
    entry: IndexEntry,
    refused: dict[str, Refusal],
    refusals: tuple[RefusedPackage, ...],
    keys: Keys,
    count: int,
) -> Pushed:
    if entry.id in refused:
        raise OffsiteError(
            f"the branch already holds a package named {entry.id} that this key did not make "
            f"({refused[entry.id].reason}); it is left untouched, and this backup not pushed",
            refused[entry.id].kind,
        )
    try:
        opened = open_package(cache, entry.tree, entry, keys, time.time())
    except Refusal as refusal:
        raise OffsiteError(f"offsite backup {entry.id}: {refusal}", refusal.kind) from None
    log.info("offsite: backup %s is already on the branch", entry.id)
    return Pushed(opened.entry, count, refusals)


def _commit_time(cache: BareRepo, commit: str) -> int:
    """A kept commit's date, so rebuilding an unchanged prefix gives the same commits (it is
    a git date only: nothing decides by it)."""
    result = cache.run(
        ["show", "-s", "--format=%ct", "--end-of-options", commit],
        what="offsite commit",
        check=False,
    )
    return int(result.text) if result.returncode == 0 and result.text.isdigit() else 0


def _store_backup(
    cache: BareRepo,
    backup: Backup,
    recipient: x25519.Recipient,
    mac: MacKey,
    part_size: int,
    work_dir: Path,
) -> tuple[OffsiteEntry, IndexEntry]:
    """Pack the backup into objects of the cache: its sealed package's tree and entries."""
    with scratch(work_dir, "push-") as staging:
        parts, paths = pack(
            backup.data_path,
            compressed=backup.manifest.compression == "zstd",
            recipient=recipient,
            folder=staging,
            part_size=part_size,
        )
        blobs = []
        for part, path in zip(parts, paths, strict=True):
            blobs.append((part.name, cache.hash_file(path)))
            path.unlink()  # a part at a time: the staging folder never holds the whole package
    sealed = encrypt_bytes(backup.manifest.to_json().encode(), recipient)
    package = Package(
        encrypted=True,
        recipient=str(recipient),
        compression="zstd",
        stored_size=sum(part.size for part in parts),
        parts=parts,
        id=backup.id,
        manifest=Part(MANIFEST_BLOB, len(sealed), hashlib.sha256(sealed).hexdigest()),
        kind=PGDUMP_KIND if is_dump(backup.manifest) else PACKAGE_KIND,
    )
    document = seal(package.to_dict(), mac)
    package_blob = cache.hash_bytes(json.dumps(document, indent=2, sort_keys=True).encode())
    tree = cache.mktree(backup_tree(blobs, cache.hash_bytes(sealed), package_blob))
    manifest = backup.manifest
    entry = OffsiteEntry(
        id=manifest.id,
        tier=manifest.tier,
        created_at=manifest.created_at,
        size_bytes=manifest.size_bytes,
        sha256=manifest.sha256,
        parts=len(parts),
        stored_size=package.stored_size,
        encrypted=True,
        commit="",
        tree=tree,
    )
    return entry, IndexEntry(manifest.id, "", tree)


def _build_chain(
    cache: BareRepo, branch: str, entries: list[IndexEntry], stamps: dict[str, int]
) -> tuple[str, list[IndexEntry]]:
    """Commits oldest → newest, each tree holding its backup, the index so far, and the
    package and manifest (no parts) of every older backup."""
    parent: str | None = None
    built: list[IndexEntry] = []
    metas: list[tuple[str, str]] = []
    for entry in entries:
        index_blob = cache.hash_bytes(index_document(branch, built, entry))
        tree = cache.mktree(commit_tree(index_blob, entry, metas))
        args = ["commit-tree", tree, "-m", f"offsite {entry.kind} {entry.id}"]
        if parent is not None:
            args += ["-p", parent]
        stamp = f"{stamps.get(entry.id, 0)} +0000"
        commit = cache.run(
            args,
            what="offsite commit",
            extra_env={"GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp},
        ).text
        built.append(dataclasses.replace(entry, commit=commit))
        metas.append((entry.id, meta_tree(cache, entry.tree)))
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
