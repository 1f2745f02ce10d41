"""The branch's format, and the one place that reads it back (and refuses what is not ours).

The branch is a chain of commits, oldest first, each adding one backup::

    index.json                      in clear, untrusted: per package only id, commit and tree
    <backup id>/package.json        the package: parts (name, size, sha256), the encrypted
                                    manifest's size and sha256, the recipient, and their MAC
    <backup id>/manifest.age        the catalogue manifest, age-encrypted (rows, sizes, times)
    <backup id>/part-0000.zst.age   zstandard, then age, split into parts < 45 MB
    <older id>/package.json …       every older package's package.json and manifest.age too
                                    (no parts), so the tip alone authenticates the whole chain

so a depth-1 fetch of the tip gives the newest backup and what is needed to authenticate and
order all of them. An entry's ``commit`` is written as null in the commit that adds it (a commit
cannot name itself): readers take the commit they read it from. Packages of format 1 (before
MACs) are carried in the index with their old fields (``legacy``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from watchdog.offsite.errors import OffsiteError
from watchdog.offsite.git import BareRepo
from watchdog.offsite.package import MANIFEST_BLOB, MAX_META_SIZE

INDEX = "index.json"
INDEX_KIND = "erixcast-offsite"
INDEX_FORMAT = 2
MANIFEST = "manifest.json"
"""Format 1 only: the manifest in clear."""
PACKAGE = "package.json"
META_NAMES = (PACKAGE, MANIFEST_BLOB, MANIFEST)
"""What of a package's folder older commits carry (never the parts)."""
MAX_INDEX_SIZE = 4 * MAX_META_SIZE
OBJECT_ID = re.compile(r"[0-9a-f]{40}([0-9a-f]{24})?")
BACKUP_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
"""What an index may name: object ids, and backup ids that are plain folder names."""
BACKUP, JOURNAL = "backup", "journal"
KINDS = (BACKUP, JOURNAL)


@dataclass(frozen=True)
class IndexEntry:
    """Where a package is, as the (untrusted) index says: nothing here is believed until the
    package it points to authenticates."""

    id: str
    commit: str
    tree: str
    """Of the package's folder, parts included, in its own commit."""
    legacy: dict[str, Any] | None = field(default=None, compare=False)
    """A format-1 entry's fields (dates, sizes), kept as they were; never trusted."""
    kind: str = BACKUP
    """``backup`` or ``journal``: which reader opens it. Only a hint — the package's own
    authenticated kind decides, and a package of the other kind is refused."""

    def to_index(self, commit: str | None) -> dict[str, Any]:
        base: dict[str, Any] = {"id": self.id, "commit": commit, "tree": self.tree}
        if self.kind != BACKUP:
            base["kind"] = self.kind
        return {**self.legacy, **base, "format": 1} if self.legacy is not None else base

    @classmethod
    def from_index(cls, data: Any, commit: str, index_format: int) -> IndexEntry:
        """Raises ValueError for ids that are not what this module writes (the branch is input)."""
        if not isinstance(data, dict):
            raise ValueError("not an offsite entry")
        legacy = index_format == 1 or data.get("format") == 1
        entry = cls(
            id=str(data["id"]),
            commit=str(data.get("commit") or commit),
            tree=str(data["tree"]),
            legacy=dict(data) if legacy else None,
            kind=data.get("kind", BACKUP),
        )
        if (
            entry.kind not in KINDS
            or not BACKUP_ID.fullmatch(entry.id)
            or not all(OBJECT_ID.fullmatch(sha) for sha in (entry.commit, entry.tree))
        ):
            raise ValueError("not an offsite entry")
        return entry


@dataclass(frozen=True)
class OffsiteEntry:
    """A package that authenticated (or, on an explicit opt-in, an old unauthenticated one):
    every field below comes from its MAC-checked package and its decrypted manifest."""

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
    authenticated: bool = True
    """False only for a format-1 package read on the operator's explicit opt-in."""
    future: bool = False
    """Dated past now + the clock-skew allowance: never chosen as the newest."""

    @property
    def created_iso(self) -> str:
        return datetime.fromtimestamp(self.created_at, UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class RefusedPackage:
    """A package on the branch that is not used, and why (``kind`` as OffsiteError's)."""

    id: str
    commit: str
    kind: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"id": self.id, "commit": self.commit, "kind": self.kind, "reason": self.reason}


def parse_json(raw: bytes) -> Any:
    """JSON read from the branch; ValueError for anything else, nesting too deep to parse
    included (a planted file must be refused, never crash the reader)."""
    try:
        return json.loads(raw)
    except RecursionError:
        raise ValueError("nested too deep") from None


# -- writing -----------------------------------------------------------------------------------


def backup_tree(
    parts: Sequence[tuple[str, str]], manifest_blob: str, package_blob: str
) -> list[str]:
    """``mktree`` lines of one backup's folder: its parts (name, blob), manifest and package."""
    lines = [f"100644 blob {blob}\t{name}" for name, blob in parts]
    return [
        *lines,
        f"100644 blob {manifest_blob}\t{MANIFEST_BLOB}",
        f"100644 blob {package_blob}\t{PACKAGE}",
    ]


def meta_tree(repo: BareRepo, tree: str) -> str:
    """The tree of a package's folder without its parts (what later commits carry)."""
    listing = repo.entries_under(tree) or {}
    lines = [
        f"100644 blob {sha}\t{name}"
        for name, (sha, _) in sorted(listing.items())
        if name in META_NAMES
    ]
    return repo.mktree(lines)


def index_document(branch: str, before: Sequence[IndexEntry], entry: IndexEntry) -> bytes:
    """``index.json`` of the commit that adds ``entry`` after the committed ``before``."""
    index = {
        "kind": INDEX_KIND,
        "format": INDEX_FORMAT,
        "branch": branch,
        "entries": [*(item.to_index(item.commit) for item in before), entry.to_index(None)],
    }
    return json.dumps(index, indent=2).encode()


def commit_tree(index_blob: str, entry: IndexEntry, metas: Sequence[tuple[str, str]]) -> list[str]:
    """``mktree`` lines of a commit's root: the index, the backup's folder, the older metas."""
    return [
        f"100644 blob {index_blob}\t{INDEX}",
        f"040000 tree {entry.tree}\t{entry.id}",
        *(f"040000 tree {tree}\t{backup_id}" for backup_id, tree in metas),
    ]


# -- reading -----------------------------------------------------------------------------------


def load_chain(repo: BareRepo, tip: str, branch: str) -> list[IndexEntry]:
    """The entries listed at ``tip``, oldest first. Refuses a branch that is not ours."""
    foreign = OffsiteError(
        f"branch {branch} of the backup repository holds something other than offsite "
        "backups; refusing to touch it (choose another BACKUP_GIT_BRANCH)",
        "foreign",
    )
    raw = read_bounded(repo, f"{tip}:{INDEX}", MAX_INDEX_SIZE)
    if raw is None:
        raise foreign
    try:
        data = parse_json(raw)
    except ValueError:
        raise foreign from None
    if not isinstance(data, dict) or data.get("kind") != INDEX_KIND:
        raise foreign
    try:
        form = int(data.get("format", 1))
        chain = [IndexEntry.from_index(item, tip, form) for item in data["entries"]]
    except (KeyError, TypeError, ValueError):
        raise OffsiteError(f"the index on branch {branch} is malformed", "corrupt") from None
    if len({entry.id for entry in chain}) != len(chain):
        raise OffsiteError(f"the index on branch {branch} names a backup twice", "corrupt")
    return chain


def read_bounded(repo: BareRepo, spec: str, limit: int) -> bytes | None:
    """The blob ``spec`` names if it is at most ``limit`` bytes (None: none, or too large)."""
    size = repo.blob_size(spec)
    if size is None or size > limit:
        return None
    return repo.blob(spec)
