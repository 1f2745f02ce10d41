"""The branch's format, and the one place that reads it back (and refuses what is not ours).

The branch is a chain of at most ``keep`` commits, oldest first, each holding one backup::

    index.json                      the chain up to this commit (ids, sizes, commits, trees)
    <backup id>/manifest.json       the catalogue manifest (sha256 of the plain database …)
    <backup id>/package.json        how it is stored: encrypted to which recipient, the parts
    <backup id>/part-0000.zst.age   zstandard, then age, split into parts < 45 MB

so a depth-1 fetch of the tip gives the newest backup and the list of all of them. An entry's
``commit`` is written as null in the commit that adds it (a commit cannot name itself): readers
take the commit they read it from.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from watchdog.data.catalogue import Manifest
from watchdog.offsite.errors import OffsiteError
from watchdog.offsite.git import BareRepo
from watchdog.offsite.package import Package

INDEX = "index.json"
INDEX_KIND = "erixcast-offsite"
INDEX_FORMAT = 1
MANIFEST = "manifest.json"
PACKAGE = "package.json"
OBJECT_ID = re.compile(r"[0-9a-f]{40}([0-9a-f]{24})?")
BACKUP_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
"""What an index may name: object ids, and backup ids that are plain folder names."""


@dataclass(frozen=True)
class OffsiteEntry:
    id: str
    tier: str
    created_at: float
    size_bytes: int
    """Of the plain database."""
    sha256: str
    """Of the plain database."""
    parts: int
    stored_size: int
    """Bytes on the branch (compressed, encrypted, all parts)."""
    encrypted: bool
    commit: str
    tree: str

    @property
    def created_iso(self) -> str:
        return datetime.fromtimestamp(self.created_at, UTC).isoformat(timespec="seconds")

    @classmethod
    def stored(cls, manifest: Manifest, package: Package, tree: str) -> OffsiteEntry:
        """The entry for a backup packed into ``tree`` (not committed yet)."""
        return cls(
            id=manifest.id,
            tier=manifest.tier,
            created_at=manifest.created_at,
            size_bytes=manifest.size_bytes,
            sha256=manifest.sha256,
            parts=len(package.parts),
            stored_size=package.stored_size,
            encrypted=package.encrypted,
            commit="",
            tree=tree,
        )

    def to_index(self, commit: str | None) -> dict[str, Any]:
        return {
            "id": self.id,
            "tier": self.tier,
            "created_at": self.created_at,
            "size_bytes": self.size_bytes,
            "sha256": self.sha256,
            "parts": self.parts,
            "stored_size": self.stored_size,
            "encrypted": self.encrypted,
            "commit": commit,
            "tree": self.tree,
        }

    @classmethod
    def from_index(cls, data: dict[str, Any], commit: str) -> OffsiteEntry:
        """Raises ValueError for ids that are not what this module writes (the branch is input)."""
        entry = cls(
            id=str(data["id"]),
            tier=str(data["tier"]),
            created_at=float(data["created_at"]),
            size_bytes=int(data["size_bytes"]),
            sha256=str(data["sha256"]),
            parts=int(data["parts"]),
            stored_size=int(data["stored_size"]),
            encrypted=bool(data["encrypted"]),
            commit=str(data.get("commit") or commit),
            tree=str(data["tree"]),
        )
        if not BACKUP_ID.fullmatch(entry.id) or not all(
            OBJECT_ID.fullmatch(sha) for sha in (entry.commit, entry.tree)
        ):
            raise ValueError("not an offsite entry")
        return entry


# -- writing -----------------------------------------------------------------------------------


def backup_tree(
    parts: Sequence[tuple[str, str]], manifest_blob: str, package_blob: str
) -> list[str]:
    """``mktree`` lines of one backup's folder: its parts (name, blob), manifest and package."""
    lines = [f"100644 blob {blob}\t{name}" for name, blob in parts]
    return [
        *lines,
        f"100644 blob {manifest_blob}\t{MANIFEST}",
        f"100644 blob {package_blob}\t{PACKAGE}",
    ]


def index_document(branch: str, before: Sequence[OffsiteEntry], entry: OffsiteEntry) -> bytes:
    """``index.json`` of the commit that adds ``entry`` after the committed ``before``."""
    index = {
        "kind": INDEX_KIND,
        "format": INDEX_FORMAT,
        "branch": branch,
        "entries": [*(item.to_index(item.commit) for item in before), entry.to_index(None)],
    }
    return json.dumps(index, indent=2).encode()


def commit_tree(index_blob: str, entry: OffsiteEntry) -> list[str]:
    """``mktree`` lines of a commit's root: the index and the backup's folder."""
    return [f"100644 blob {index_blob}\t{INDEX}", f"040000 tree {entry.tree}\t{entry.id}"]


# -- reading -----------------------------------------------------------------------------------


def load_chain(repo: BareRepo, tip: str, branch: str) -> list[OffsiteEntry]:
    """The entries listed at ``tip``, oldest first. Refuses a branch that is not ours."""
    foreign = OffsiteError(
        f"branch {branch} of the backup repository holds something other than offsite "
        "backups; refusing to touch it (choose another BACKUP_GIT_BRANCH)",
        "foreign",
    )
    raw = repo.blob(f"{tip}:{INDEX}")
    if raw is None:
        raise foreign
    try:
        data = json.loads(raw)
    except ValueError:
        raise foreign from None
    if not isinstance(data, dict) or data.get("kind") != INDEX_KIND:
        raise foreign
    try:
        return [OffsiteEntry.from_index(item, tip) for item in data["entries"]]
    except (KeyError, TypeError, ValueError):
        raise OffsiteError(f"the index on branch {branch} is malformed", "corrupt") from None


def load_backup(repo: BareRepo, entry: OffsiteEntry) -> tuple[Manifest, Package, list[str]]:
    """One backup's manifest, package and part blobs, from its commit (which ``repo`` holds)."""
    try:
        blobs = repo.blobs_under(f"{entry.commit}:{entry.id}")
        if blobs is None:
            raise KeyError(entry.id)
        manifest = Manifest.from_json(_read(repo, blobs[MANIFEST]).decode())
        package = Package.from_dict(json.loads(_read(repo, blobs[PACKAGE])))
        parts = [blobs[part.name] for part in package.parts]
    except (KeyError, ValueError, TypeError) as error:
        raise OffsiteError(
            f"offsite backup {entry.id} is malformed on the branch ({type(error).__name__})",
            "corrupt",
        ) from None
    if manifest.id != entry.id:
        raise OffsiteError(f"offsite backup {entry.id}: its manifest names another", "corrupt")
    return manifest, package, parts


def _read(repo: BareRepo, sha: str) -> bytes:
    data = repo.blob(sha)
    if data is None:
        raise KeyError(sha)
    return data
