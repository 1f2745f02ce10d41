"""Pushing the update journal: the complete lines added since the last push (the newest
segment's included) as one journal package, appended on top of the branch's tip.

Only what is new travels: a cursor beside the cache (``DATA_DIR/offsite/journal-pushed.json``)
remembers, per segment, how many bytes went and their sha256. A segment whose pushed prefix no
longer matches (rewritten by an erasure) goes again whole, at offset 0; ``erasures.jsonl`` goes
whole with every package. A lost cursor only means pushing everything once more: replay takes
each update once. The append is one commit on the tip (no chain rebuild: the tip already holds
every older package's metadata); rotation happens when a backup is pushed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pyrage import x25519

from conf.files import atomic_write_json
from conf.journal import ERASURES_FILE, list_segments, read_segment
from conf.units import MIB
from watchdog.offsite.auth import seal
from watchdog.offsite.cache import CACHE_REF, ensure_cache, locked, prune, scratch
from watchdog.offsite.fetch import fetch_branch
from watchdog.offsite.git import BareRepo, Remote
from watchdog.offsite.index import (
    INDEX,
    JOURNAL,
    IndexEntry,
    backup_tree,
    index_document,
    load_chain,
    meta_tree,
)
from watchdog.offsite.journal_format import Chunk, JournalManifest
from watchdog.offsite.package import (
    JOURNAL_KIND,
    MANIFEST_BLOB,
    Package,
    Part,
    encrypt_bytes,
    pack,
)
from watchdog.offsite.push import _build_chain, _push
from watchdog.offsite.verify import Keys

log = logging.getLogger(__name__)

CURSOR_NAME = "journal-pushed.json"
MAX_PUSH_BYTES = 64 * MIB
"""Lines in one package at most (whole segments; at least one): a long backlog goes in turns."""


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Cursor:
    segments: dict[str, tuple[int, int, int, str]] = field(default_factory=dict)
    """Segment name → (its size and mtime when read, bytes pushed, their sha256)."""
    erasures: str | None = None
    """sha256 of the erasure records last pushed."""

    @classmethod
    def load(cls, path: Path) -> Cursor:
        """The cursor, or an empty one (push everything) for a missing or odd file."""
        try:
            data = json.loads(path.read_text())
            segments = {
                str(name): (int(v[0]), int(v[1]), int(v[2]), str(v[3]))
                for name, v in data["segments"].items()
            }
            erasures = data.get("erasures")
            return cls(segments, erasures if isinstance(erasures, str) else None)
        except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError):
            return cls()

    def save(self, path: Path) -> None:
        atomic_write_json(path, {"segments": self.segments, "erasures": self.erasures})


@dataclass
class Planned:
    chunks: list[tuple[Chunk, bytes]] = field(default_factory=list)
    cursor: Cursor = field(default_factory=Cursor)
    updates: int = 0
    oldest_at: float | None = None
    newest_at: float | None = None
    segments_changed: bool = False
    erasures_changed: bool = False
    more: bool = False
    """Left for the next push (``MAX_PUSH_BYTES``)."""

    @property
    def changed(self) -> bool:
        return self.segments_changed or self.erasures_changed


def plan(folder: Path, cursor: Cursor, limit: int = MAX_PUSH_BYTES) -> Planned:
    """What the next journal package carries; ``cursor`` is what went before."""
    planned = Planned()
    size = 0
    for path in list_segments(folder):
        try:
            stat = path.stat()  # before reading: an append after it is seen next time
        except FileNotFoundError:
            continue
        before = cursor.segments.get(path.name)
        if before is not None and before[:2] == (stat.st_size, stat.st_mtime_ns):
            planned.cursor.segments[path.name] = before
            continue
        if size >= limit:
            planned.more = True
            if before is not None:
                planned.cursor.segments[path.name] = before
            continue
        read = read_segment(path)
        good = b"".join(read.lines)
        offset, skip = 0, 0
        if before is not None and before[2] <= len(good) and _sha(good[: before[2]]) == before[3]:
            offset, position = before[2], 0
            while skip < len(read.lines) and position < offset:
                position += len(read.lines[skip])
                skip += 1
        new_lines, entries = read.lines[skip:], read.entries[skip:]
        if new_lines:
            data = b"".join(new_lines)
            planned.chunks.append((Chunk(path.name, offset, len(data), len(new_lines)), data))
            planned.updates += len(new_lines)
            size += len(data)
            times = [entry.at for entry in entries]
            planned.oldest_at = min([*times, *_opt(planned.oldest_at)])
            planned.newest_at = max([*times, *_opt(planned.newest_at)])
            planned.segments_changed = True
        planned.cursor.segments[path.name] = (stat.st_size, stat.st_mtime_ns, len(good), _sha(good))
    erasures = b"".join(read_segment(folder / ERASURES_FILE).lines)
    planned.cursor.erasures = _sha(erasures) if erasures else None
    planned.erasures_changed = planned.cursor.erasures != cursor.erasures
    if erasures:
        lines = erasures.count(b"\n")
        planned.chunks.append((Chunk(ERASURES_FILE, 0, len(erasures), lines), erasures))
    return planned


def _opt(value: float | None) -> list[float]:
    return [] if value is None else [value]


@dataclass(frozen=True)
class JournalPushed:
    id: str
    updates: int
    chunks: int
    plain_bytes: int
    stored_bytes: int
    newest_at: float | None
    seconds: float
    more: bool


def push_journal(
    remote: Remote,
    cache: BareRepo,
    folder: Path,
    cursor_file: Path,
    *,
    keys: Keys,
    recipient: x25519.Recipient,
    part_size: int,
    work_dir: Path,
    now: float,
) -> JournalPushed | None:
    """One journal package with what is new, on top of the branch (None: nothing new).
    Raises OffsiteError; the cursor moves only after the server took the push."""
    assert keys.mac is not None
    started = time.monotonic()
    planned = plan(folder, Cursor.load(cursor_file))
    if not planned.changed:
        return None
    stamp = datetime.fromtimestamp(now, UTC).strftime("%Y%m%dT%H%M%S")
    package_id = f"{stamp}Z-journal-{secrets.token_hex(3)}"
    with locked(cache, timeout=remote.git.timeout):
        ensure_cache(cache)
        try:
            tip = fetch_branch(remote, cache, CACHE_REF, depth=1, what="reading the offsite branch")
            chain = load_chain(cache, tip, remote.branch) if tip else []
            manifest, stored, index_entry = _store(
                cache, planned, package_id, now, keys, recipient, part_size, work_dir
            )
            if tip is None:
                new_tip, _ = _build_chain(
                    cache, remote.branch, [index_entry], {package_id: int(now)}
                )
            else:
                new_tip = _append(cache, remote.branch, tip, chain, index_entry, int(now))
            _push(remote, cache, new_tip, expected=tip)
            cache.run(["update-ref", CACHE_REF, new_tip], what="offsite cache")
        finally:
            prune(cache)
    planned.cursor.save(cursor_file)
    pushed = JournalPushed(
        id=package_id,
        updates=planned.updates,
        chunks=len(planned.chunks),
        plain_bytes=manifest.size_bytes,
        stored_bytes=stored,
        newest_at=planned.newest_at,
        seconds=time.monotonic() - started,
        more=planned.more,
    )
    log.info(
        "offsite: journal package %s pushed to branch %s: %d lines, %.1f KB stored, %.1f s",
        package_id,
        remote.branch,
        pushed.updates,
        stored / 1024,
        pushed.seconds,
    )
    return pushed


def _store(
    cache: BareRepo,
    planned: Planned,
    package_id: str,
    now: float,
    keys: Keys,
    recipient: x25519.Recipient,
    part_size: int,
    work_dir: Path,
) -> tuple[JournalManifest, int, IndexEntry]:
    """Pack the planned chunks into objects of the cache: the sealed package's tree."""
    assert keys.mac is not None
    digest = hashlib.sha256()
    with scratch(work_dir, "journal-") as staging:
        payload = staging / "payload"
        with payload.open("wb") as out:
            for _, data in planned.chunks:
                out.write(data)
                digest.update(data)
        parts_folder = staging / "parts"
        parts_folder.mkdir()
        parts, paths = pack(
            payload,
            compressed=False,
            recipient=recipient,
            folder=parts_folder,
            part_size=part_size,
        )
        blobs = [
            (part.name, cache.hash_file(path)) for part, path in zip(parts, paths, strict=True)
        ]
    manifest = JournalManifest(
        id=package_id,
        created_at=now,
        size_bytes=sum(chunk.bytes for chunk, _ in planned.chunks),
        sha256=digest.hexdigest(),
        chunks=tuple(chunk for chunk, _ in planned.chunks),
        updates=planned.updates,
        oldest_at=planned.oldest_at,
        newest_at=planned.newest_at,
    )
    sealed = encrypt_bytes(manifest.to_json().encode(), recipient)
    package = Package(
        encrypted=True,
        recipient=str(recipient),
        compression="zstd",
        stored_size=sum(part.size for part in parts),
        parts=parts,
        id=package_id,
        manifest=Part(MANIFEST_BLOB, len(sealed), _sha(sealed)),
        kind=JOURNAL_KIND,
    )
    document: dict[str, Any] = seal(package.to_dict(), keys.mac)
    package_blob = cache.hash_bytes(json.dumps(document, indent=2, sort_keys=True).encode())
    tree = cache.mktree(backup_tree(blobs, cache.hash_bytes(sealed), package_blob))
    return manifest, package.stored_size, IndexEntry(package_id, "", tree, kind=JOURNAL)


def _append(
    cache: BareRepo,
    branch: str,
    tip: str,
    chain: list[IndexEntry],
    entry: IndexEntry,
    stamp: int,
) -> str:
    """A commit on ``tip`` adding ``entry``: the tip's folders carried (its own package cut
    to its metadata, as every older one is), the index extended."""
    listing = cache.run(["ls-tree", "-z", tip], what="offsite tree").stdout.decode()
    newest = chain[-1].id if chain else None
    lines = []
    for record in filter(None, listing.split("\0")):
        meta, _, name = record.partition("\t")
        mode, kind, sha = meta.split()
        if name == INDEX or kind != "tree":
            continue
        if name == newest:
            sha = meta_tree(cache, sha)
        lines.append(f"{mode} {kind} {sha}\t{name}")
    index_blob = cache.hash_bytes(index_document(branch, chain, entry))
    lines += [f"100644 blob {index_blob}\t{INDEX}", f"040000 tree {entry.tree}\t{entry.id}"]
    tree = cache.mktree(lines)
    stamp_text = f"{stamp} +0000"
    return cache.run(
        ["commit-tree", tree, "-p", tip, "-m", f"offsite journal {entry.id}"],
        what="offsite commit",
        extra_env={"GIT_AUTHOR_DATE": stamp_text, "GIT_COMMITTER_DATE": stamp_text},
    ).text


__all__ = ["Cursor", "JournalPushed", "plan", "push_journal"]
