"""Opening a package from the branch: its MAC first, then its bounds, then (and only then) its
encrypted manifest. Nothing the branch says is believed before the MAC passed, and the dates
that order backups come from the decrypted, authenticated manifest, never from the index."""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

import pyrage
from pyrage import x25519

from watchdog.data.catalogue import Manifest
from watchdog.data.pgdump import is_dump
from watchdog.offsite.auth import MacKey, is_authentic
from watchdog.offsite.git import BareRepo
from watchdog.offsite.index import (
    MANIFEST,
    PACKAGE,
    IndexEntry,
    OffsiteEntry,
    parse_json,
    read_bounded,
)
from watchdog.offsite.package import (
    MANIFEST_BLOB,
    MAX_META_SIZE,
    PGDUMP_KIND,
    Package,
    decrypt_bytes,
)

CLOCK_SKEW = 300.0
"""Seconds a backup may be dated ahead of this machine's clock and still be "the newest"."""
RECIPIENT = re.compile(r"age1[02-9ac-hj-np-z]{58}")
"""An age X25519 public key: the only text of an unauthenticated package an error may quote."""
MAX_DATABASE_SIZE = 1 << 40
"""1 TiB: a manifest claiming more is refused before any room is looked for."""


class Refusal(Exception):
    """Why one package is not used (``kind`` as OffsiteError's); never carries a secret."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


@dataclass(frozen=True)
class Keys:
    identity: x25519.Identity | None
    mac: MacKey | None
    allow_unauthenticated: bool = False

    @classmethod
    def of(cls, identity: x25519.Identity | None, allow_unauthenticated: bool = False) -> Keys:
        mac = MacKey.from_identity(identity) if identity is not None else None
        return cls(identity, mac, allow_unauthenticated)


@dataclass(frozen=True)
class Opened:
    entry: OffsiteEntry
    manifest: Manifest | None
    """None only for an old package listed from its index entry (its folder not at hand)."""
    package: Package | None
    listing: dict[str, tuple[str, int]]
    """The folder's blobs (name → sha, size) where it was opened."""


def newest_first(entries: Iterable[OffsiteEntry]) -> list[OffsiteEntry]:
    """By authenticated date, newest first; future-dated ones after all the others."""
    ordered = sorted(entries, key=lambda e: (e.created_at, e.id), reverse=True)
    return [e for e in ordered if not e.future] + [e for e in ordered if e.future]


def refusal_of(repo: BareRepo, tree: str, mac: MacKey) -> Refusal | None:
    """None when the package in ``tree`` carries a MAC of this key, else why not (a cheap
    check for pushes, which only decide what to keep: no decryption)."""
    raw = read_bounded(repo, f"{tree}:{PACKAGE}", MAX_META_SIZE)
    try:
        document = parse_json(raw) if raw is not None else None
    except ValueError:
        document = None
    if not isinstance(document, dict):
        return Refusal("corrupt", "its package is missing or malformed")
    if "mac" not in document:
        return _unauthenticated()
    if not is_authentic(document, mac):
        return _not_ours(document, None)
    return None


def kind_of(repo: BareRepo, tree: str, mac: MacKey | None) -> str | None:
    """The authenticated ``kind`` of the package in ``tree`` (None: no MAC of this key, or
    none given): which packages a push may count and rotate, read without decrypting."""
    if mac is None:
        return None
    raw = read_bounded(repo, f"{tree}:{PACKAGE}", MAX_META_SIZE)
    try:
        document = parse_json(raw) if raw is not None else None
    except ValueError:
        return None
    if not isinstance(document, dict) or not is_authentic(document, mac):
        return None
    kind = document.get("kind")
    return kind if isinstance(kind, str) else None


def _not_ours(document: dict, identity: x25519.Identity | None) -> Refusal:
    """A MAC that fails: another key's package (said as such, to help an operator who set the
    wrong key), or a forgery. Either way refused; the recipient only picks the words."""
    mine = str(identity.to_public()) if identity is not None else None
    theirs = document.get("recipient")
    if (
        mine is not None
        and isinstance(theirs, str)
        and RECIPIENT.fullmatch(theirs)
        and theirs != mine
    ):
        return Refusal(
            "key",
            f"the age key does not open it (encrypted to {theirs}; BACKUP_AGE_KEY is the "
            f"key of {mine}), and its MAC is not this key's",
        )
    return Refusal("forged", "its MAC does not verify: it was not made with this BACKUP_AGE_KEY")


def open_package(repo: BareRepo, where: str, index: IndexEntry, keys: Keys, now: float) -> Opened:
    """The package in folder ``where`` (``<commit>:<id>``), authenticated. Raises Refusal."""
    listing = repo.entries_under(where)
    if listing is None:
        if index.legacy is not None:
            return _legacy_from_index(index, keys, now)
        raise Refusal("corrupt", "its folder is not on the branch")
    document = _json(repo, listing, PACKAGE, "package")
    if document.get("format", 1) == 1 and "mac" not in document:
        return _open_legacy(repo, listing, document, index, keys, now)
    if keys.mac is None or keys.identity is None:
        raise Refusal("key", "BACKUP_AGE_KEY is needed to authenticate it")
    if not is_authentic(document, keys.mac):
        raise _not_ours(document, keys.identity)
    try:
        package = Package.from_dict(document, index.id)
    except (KeyError, TypeError, ValueError) as error:
        raise Refusal("corrupt", f"its package is malformed ({error})") from None
    assert package.manifest is not None
    sealed = _blob(repo, listing, MANIFEST_BLOB, package.manifest.size)
    if hashlib.sha256(sealed).hexdigest() != package.manifest.sha256:
        raise Refusal("corrupt", "its manifest does not match the package's sha256")
    try:
        text = decrypt_bytes(sealed, keys.identity)
    except (pyrage.DecryptError, OSError):
        raise Refusal("corrupt", "its manifest does not decrypt") from None
    manifest = _manifest(text, index.id)
    if is_dump(manifest) != (package.kind == PGDUMP_KIND):
        raise Refusal("corrupt", "its manifest and its package disagree on what it holds")
    return Opened(_describe(manifest, package, index, True, now), manifest, package, listing)


def _open_legacy(
    repo: BareRepo,
    listing: dict[str, tuple[str, int]],
    document: dict,
    index: IndexEntry,
    keys: Keys,
    now: float,
) -> Opened:
    if not keys.allow_unauthenticated:
        raise _unauthenticated()
    try:
        package = Package.from_dict(document)
    except (KeyError, TypeError, ValueError) as error:
        raise Refusal("corrupt", f"its package is malformed ({error})") from None
    size = listing.get(MANIFEST, ("", MAX_META_SIZE + 1))[1]
    manifest = _manifest(_blob(repo, listing, MANIFEST, size), index.id)
    return Opened(_describe(manifest, package, index, False, now), manifest, package, listing)


def _legacy_from_index(index: IndexEntry, keys: Keys, now: float) -> Opened:
    """A format-1 package whose folder is only in its own commit: listed from the old index's
    fields (on the opt-in only); fetching it opens its folder there."""
    if not keys.allow_unauthenticated:
        raise _unauthenticated()
    data = index.legacy or {}
    try:
        created = float(data["created_at"])
        entry = OffsiteEntry(
            id=index.id,
            tier=str(data["tier"]),
            created_at=created,
            size_bytes=int(data["size_bytes"]),
            sha256=str(data["sha256"]),
            parts=int(data["parts"]),
            stored_size=int(data["stored_size"]),
            encrypted=bool(data["encrypted"]),
            commit=index.commit,
            tree=index.tree,
            authenticated=False,
            future=created > now + CLOCK_SKEW,
        )
    except (KeyError, TypeError, ValueError):
        raise Refusal("corrupt", "its index entry is malformed") from None
    return Opened(entry, None, None, {})


def _unauthenticated() -> Refusal:
    return Refusal(
        "unauthenticated",
        "it has no MAC (a package from before authenticated backups); it is read only with "
        "--allow-unauthenticated",
    )


def _blob(repo: BareRepo, listing: dict[str, tuple[str, int]], name: str, size: int) -> bytes:
    found = listing.get(name)
    if found is None or found[1] != size or size > MAX_META_SIZE:
        raise Refusal("corrupt", f"its {name} is missing or not of its size")
    data = repo.blob(found[0])
    if data is None or len(data) != size:
        raise Refusal("corrupt", f"its {name} cannot be read")
    return data


def _json(repo: BareRepo, listing: dict[str, tuple[str, int]], name: str, what: str) -> dict:
    found = listing.get(name)
    if found is None or found[1] > MAX_META_SIZE:
        raise Refusal("corrupt", f"its {what} is missing or too large")
    try:
        document = parse_json(_blob(repo, listing, name, found[1]))
    except ValueError:
        raise Refusal("corrupt", f"its {what} is not JSON") from None
    if not isinstance(document, dict):
        raise Refusal("corrupt", f"its {what} is not an object")
    return document


def _manifest(raw: bytes, backup_id: str) -> Manifest:
    try:
        manifest = Manifest.from_json(raw.decode())
        created, size = manifest.created_at, manifest.size_bytes
        sane = (
            isinstance(created, int | float)
            and not isinstance(created, bool)
            and math.isfinite(created)
            and isinstance(size, int)
            and not isinstance(size, bool)
            and 0 < size <= MAX_DATABASE_SIZE
            and isinstance(manifest.sha256, str)
            and len(manifest.sha256) == 64
        )
    except (TypeError, ValueError, UnicodeDecodeError):
        sane = False
    if not sane:
        raise Refusal("corrupt", "its manifest is malformed")
    if manifest.id != backup_id:
        raise Refusal("corrupt", "its manifest names another backup")
    return manifest


def _describe(
    manifest: Manifest, package: Package, index: IndexEntry, authenticated: bool, now: float
) -> OffsiteEntry:
    return OffsiteEntry(
        id=manifest.id,
        tier=manifest.tier,
        created_at=float(manifest.created_at),
        size_bytes=manifest.size_bytes,
        sha256=manifest.sha256,
        parts=len(package.parts),
        stored_size=package.stored_size,
        encrypted=package.encrypted,
        commit=index.commit,
        tree=index.tree,
        authenticated=authenticated,
        future=manifest.created_at > now + CLOCK_SKEW,
    )
