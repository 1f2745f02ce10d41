"""Journal packages on the branch: the update journal's lines, packed, encrypted and
authenticated exactly like a backup (``package.json`` with its MAC, ``manifest.age``, parts),
told apart by the package's authenticated ``kind`` (``JOURNAL_KIND``).

A journal package carries *chunks*: for each segment the lines added since the previous push
(or the whole segment again when it was rewritten, offset 0), then ``erasures.jsonl`` whole.
Its encrypted manifest says which chunk is which and the time of its newest entry, so a
restore knows what a backup lacks and a push knows what a backup on the branch holds.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import pyrage

from conf.units import is_moment
from watchdog.offsite.auth import is_authentic
from watchdog.offsite.git import BareRepo
from watchdog.offsite.index import JOURNAL, IndexEntry
from watchdog.offsite.package import JOURNAL_KIND, MANIFEST_BLOB, MAX_META_SIZE, Package
from watchdog.offsite.verify import Keys, Refusal, _blob, _json, _not_ours
from watchdog.rules.journal import JournalPackage, packages_to_drop

MANIFEST_KIND = "erixcast-journal-manifest"
MANIFEST_FORMAT = 1
MAX_JOURNAL_SIZE = 1 << 34
"""16 GiB of lines in one package: a manifest claiming more is refused unread."""
MAX_CHUNKS = 100_000
CHUNK_FILE = re.compile(r"segment-\d{8}\.jsonl|erasures\.jsonl")


@dataclass(frozen=True)
class Chunk:
    file: str
    offset: int
    bytes: int
    lines: int


@dataclass(frozen=True)
class JournalManifest:
    id: str
    created_at: float
    size_bytes: int
    """Of the plain payload: every chunk, one after the other."""
    sha256: str
    chunks: tuple[Chunk, ...]
    updates: int
    oldest_at: float | None
    newest_at: float | None
    kind: str = MANIFEST_KIND
    format: int = MANIFEST_FORMAT

    def to_json(self) -> str:
        document = asdict(self)
        document["chunks"] = [asdict(chunk) for chunk in self.chunks]
        return json.dumps(document, sort_keys=True)

    @classmethod
    def from_json(cls, raw: bytes, package_id: str) -> JournalManifest:
        """The one loader; Refusal for anything of another shape (it was decrypted, and is
        authenticated through the package's MAC, but is read as input all the same)."""
        try:
            data = json.loads(raw)
            if not isinstance(data, dict) or data.get("kind") != MANIFEST_KIND:
                raise ValueError("not a journal manifest")
            if data.get("format") != MANIFEST_FORMAT or data.get("id") != package_id:
                raise ValueError("another format or another package")
            chunks = data["chunks"]
            if not isinstance(chunks, list) or len(chunks) > MAX_CHUNKS:
                raise ValueError("chunks")
            parsed = tuple(_chunk(item) for item in chunks)
            size = _count(data["size_bytes"], MAX_JOURNAL_SIZE)
            if sum(chunk.bytes for chunk in parsed) != size:
                raise ValueError("the chunks do not add up to the size")
            sha = data["sha256"]
            if not isinstance(sha, str) or not re.fullmatch(r"[0-9a-f]{64}", sha):
                raise ValueError("sha256")
            manifest = cls(
                id=package_id,
                created_at=_moment(data["created_at"]),
                size_bytes=size,
                sha256=sha,
                chunks=parsed,
                updates=_count(data["updates"], MAX_JOURNAL_SIZE),
                oldest_at=_optional_moment(data.get("oldest_at")),
                newest_at=_optional_moment(data.get("newest_at")),
            )
        except (KeyError, TypeError, ValueError, RecursionError, UnicodeDecodeError):
            raise Refusal("corrupt", "its journal manifest is malformed") from None
        return manifest


def _count(value: Any, limit: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= limit:
        raise ValueError("a count out of bounds")
    return value


def _moment(value: Any) -> float:
    if not is_moment(value):
        raise ValueError("not a time")
    return float(value)


def _optional_moment(value: Any) -> float | None:
    return None if value is None else _moment(value)


def _chunk(data: Any) -> Chunk:
    if not isinstance(data, dict) or not isinstance(data.get("file"), str):
        raise ValueError("a chunk")
    if not CHUNK_FILE.fullmatch(data["file"]):
        raise ValueError("a chunk names a file that is not the journal's")
    return Chunk(
        data["file"],
        _count(data["offset"], MAX_JOURNAL_SIZE),
        _count(data["bytes"], MAX_JOURNAL_SIZE),
        _count(data["lines"], MAX_JOURNAL_SIZE),
    )


@dataclass(frozen=True)
class OpenedJournal:
    index: IndexEntry
    manifest: JournalManifest
    package: Package
    listing: dict[str, tuple[str, int]]

    @property
    def summary(self) -> JournalPackage:
        return JournalPackage(self.index.id, self.manifest.created_at, self.manifest.newest_at)


def open_journal(repo: BareRepo, where: str, index: IndexEntry, keys: Keys) -> OpenedJournal:
    """The journal package in folder ``where``, authenticated (its MAC, then its kind, then
    its manifest's sha256, decryption and shape). Raises Refusal; a backup package, however
    genuine, is refused here."""
    listing = repo.entries_under(where)
    if listing is None:
        raise Refusal("corrupt", "its folder is not on the branch")
    document = _json(repo, listing, "package.json", "package")
    if keys.mac is None or keys.identity is None:
        raise Refusal("key", "BACKUP_AGE_KEY is needed to authenticate it")
    if not is_authentic(document, keys.mac):
        raise _not_ours(document, keys.identity)
    try:
        package = Package.from_dict(document, index.id, kind=JOURNAL_KIND)
    except (KeyError, TypeError, ValueError) as error:
        raise Refusal("corrupt", f"its package is not a journal package ({error})") from None
    assert package.manifest is not None
    sealed = _blob(repo, listing, MANIFEST_BLOB, package.manifest.size)
    if hashlib.sha256(sealed).hexdigest() != package.manifest.sha256:
        raise Refusal("corrupt", "its manifest does not match the package's sha256")
    try:
        text = pyrage.decrypt(sealed, [keys.identity])
    except (pyrage.DecryptError, OSError):
        raise Refusal("corrupt", "its manifest does not decrypt") from None
    return OpenedJournal(index, JournalManifest.from_json(text, index.id), package, listing)


def covered_journals(
    repo: BareRepo,
    journals: Sequence[IndexEntry],
    keys: Keys,
    newest_backup_at: float,
    now: float,
) -> set[str]:
    """Journal packages a push of a backup begun at ``newest_backup_at`` may let go (see
    ``rules.journal.packages_to_drop``); one that does not open is kept."""
    if newest_backup_at > now:
        return set()  # a backup dated ahead of the clock covers nothing
    opened = []
    for index in journals:
        try:
            opened.append(open_journal(repo, index.tree, index, keys).summary)
        except Refusal:
            continue
    return packages_to_drop(opened, newest_backup_at, held=False)


def journal_entries(chain: Sequence[IndexEntry]) -> list[IndexEntry]:
    return [entry for entry in chain if entry.kind == JOURNAL]


__all__ = ["MAX_META_SIZE", "Chunk", "JournalManifest", "OpenedJournal", "open_journal"]
