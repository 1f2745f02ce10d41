"""The update journal's format: the one place that writes, reads and validates it.

Every update the bot acknowledges to Telegram is first appended here, in the same group commit
as its database batch, so a database lost or damaged after its newest backup can be rebuilt by
replaying the updates the restored copy never saw. The bot writes it (:class:`JournalWriter`);
the bot's replay, the watchdog's pruning and its offsite copy read it (:func:`read_segment`,
:func:`read_journal`).

A folder ``DATA_DIR/journal`` holds numbered segments ``segment-00000001.jsonl``; the highest
number is the one being written, the others are closed. ``erasures.jsonl`` keeps the record of
every ``/deleteme`` (a user id and a time, nothing else): erasures outlive the segments, so a
restore of a backup older than an erasure erases again. One line per entry::

    <16 hex digits of sha256(payload)> <payload: one JSON object>\\n

A line that does not end in a newline, fails its checksum or does not hold a valid entry ends
what is read of its segment; the writer cuts such a tail off the segment it resumes (the bytes
set aside beside it as ``cut-*.bin``, never deleted) and says so.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conf.files import DIR_MODE, FILE_MODE, FileLock, atomic_write, fsync_dir

log = logging.getLogger(__name__)

FORMAT = 1
SEGMENT_BYTES = 4 * 1024 * 1024
"""A segment is closed once it holds this much; closed segments are what pruning removes."""
LOCK_TIMEOUT = 30.0
"""Seconds a rewrite, a rotation or a pruning waits for another one to finish."""
UPDATE = "update"
ERASURE = "erasure"
ERASURES_FILE = "erasures.jsonl"
LOCK_FILE = ".lock"
_SEGMENT = re.compile(r"^segment-(\d{8})\.jsonl$")
_CHECKSUM = re.compile(rb"^[0-9a-f]{16}$")


class JournalLineError(ValueError):
    """A line of the journal that cannot be trusted."""


@dataclass(frozen=True)
class JournalEntry:
    """One update as Telegram sent it, or the record of one erasure."""

    kind: str
    update_id: int
    at: float
    """Seconds since the epoch when the entry was written."""
    user_id: int | None = None
    update: Mapping[str, Any] | None = None
    """The raw update (kind ``update``)."""

    def payload(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "v": FORMAT,
            "kind": self.kind,
            "update_id": self.update_id,
            "at": self.at,
            "user": self.user_id,
        }
        if self.update is not None:
            document["update"] = self.update
        return document


def encode(entry: JournalEntry) -> bytes:
    # ASCII: a lone surrogate (Telegram sends what users type) round-trips as its escape.
    payload = json.dumps(entry.payload(), separators=(",", ":")).encode()
    return _checksum(payload) + b" " + payload + b"\n"


def _checksum(payload: bytes) -> bytes:
    return hashlib.sha256(payload).hexdigest()[:16].encode()


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def decode(line: bytes) -> JournalEntry:
    """The entry a complete line (newline included) holds, or :class:`JournalLineError`."""
    if not line.endswith(b"\n"):
        raise JournalLineError("the line does not end (torn write)")
    checksum, _, payload = line[:-1].partition(b" ")
    if not _CHECKSUM.match(checksum):
        raise JournalLineError("no checksum at the start of the line")
    if _checksum(payload) != checksum:
        raise JournalLineError("the checksum does not match the line")
    try:
        document = json.loads(payload)
    except (ValueError, RecursionError) as error:
        raise JournalLineError(f"not JSON ({type(error).__name__})") from None
    if not isinstance(document, dict) or document.get("v") != FORMAT:
        raise JournalLineError("not an entry of journal format 1")
    kind, update_id, at, user = (document.get(k) for k in ("kind", "update_id", "at", "user"))
    if kind not in (UPDATE, ERASURE):
        raise JournalLineError(f"unknown kind {str(kind)[:20]!r}")
    if not _integer(update_id) or update_id < 0:
        raise JournalLineError("update_id is not a non-negative integer")
    if not isinstance(at, int | float) or isinstance(at, bool) or not math.isfinite(at):
        raise JournalLineError("at is not a time")
    if user is not None and not _integer(user):
        raise JournalLineError("user is not an integer")
    update = document.get("update")
    if kind == UPDATE:
        if not isinstance(update, dict) or update.get("update_id") != update_id:
            raise JournalLineError("the update does not carry its update_id")
    elif user is None or update is not None:
        raise JournalLineError("an erasure names a user and nothing else")
    return JournalEntry(kind, update_id, float(at), user, update)


@dataclass
class SegmentRead:
    path: Path
    entries: list[JournalEntry] = field(default_factory=list)
    lines: list[bytes] = field(default_factory=list)
    """The good lines as stored (``lines[i]`` holds ``entries[i]``)."""
    good_bytes: int = 0
    """Where the good lines end: what is after is torn or damaged."""
    size: int = 0
    problem: str | None = None

    @property
    def newest_at(self) -> float | None:
        return max((entry.at for entry in self.entries), default=None)


def read_segment(path: Path) -> SegmentRead:
    """Every good line up to the first bad one (reported in ``problem``, never raised)."""
    read = SegmentRead(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return read
    except OSError as error:
        read.problem = f"cannot read {path.name}: {error.strerror}"
        return read
    read.size = len(data)
    position = 0
    while position < len(data):
        end = data.find(b"\n", position)
        line = data[position:] if end < 0 else data[position : end + 1]
        try:
            entry = decode(line)
        except JournalLineError as error:
            read.problem = f"{path.name}: {error} at byte {position}"
            break
        read.entries.append(entry)
        read.lines.append(line)
        position += len(line)
        read.good_bytes = position
    return read


def segment_number(path: Path) -> int | None:
    match = _SEGMENT.match(path.name)
    return int(match.group(1)) if match else None


def segment_name(number: int) -> str:
    return f"segment-{number:08d}.jsonl"


def list_segments(folder: Path) -> list[Path]:
    """The segments in order (oldest first); anything else in the folder is not one."""
    try:
        found = [p for p in folder.iterdir() if segment_number(p) is not None and p.is_file()]
    except FileNotFoundError:
        return []
    return sorted(found, key=lambda p: segment_number(p) or 0)


@dataclass
class JournalRead:
    updates: list[JournalEntry] = field(default_factory=list)
    """Each journaled update once, in the order it was written."""
    erasures: list[JournalEntry] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def iter_updates(folder: Path, problems: list[str]) -> Iterator[JournalEntry]:
    """Every journaled update, segment by segment (one in memory at a time), in the order
    written; what could not be read is added to ``problems``. A copy may come twice."""
    for path in list_segments(folder):
        read = read_segment(path)
        if read.problem:
            problems.append(read.problem)
        yield from (entry for entry in read.entries if entry.kind == UPDATE)


def read_erasures(folder: Path, problems: list[str]) -> list[JournalEntry]:
    erasures = read_segment(folder / ERASURES_FILE)
    if erasures.problem:
        problems.append(erasures.problem)
    return [entry for entry in erasures.entries if entry.kind == ERASURE]


def oldest_update_id(folder: Path) -> int | None:
    """The first update of the oldest segment that holds one (None: the journal is empty)."""
    for path in list_segments(folder):
        entries = [e for e in read_segment(path).entries if e.kind == UPDATE]
        if entries:
            return min(entry.update_id for entry in entries)
    return None


def read_journal(folder: Path) -> JournalRead:
    """The whole journal in memory, each update once (for tests and small journals; replay
    streams with :func:`iter_updates`)."""
    result = JournalRead()
    seen: set[int] = set()
    for entry in iter_updates(folder, result.problems):
        if entry.update_id not in seen:
            seen.add(entry.update_id)
            result.updates.append(entry)
    result.erasures = read_erasures(folder, result.problems)
    return result


def journal_bytes(folder: Path) -> int:
    total = 0
    try:
        for path in folder.iterdir():
            if path.is_file():
                total += path.stat().st_size
    except FileNotFoundError:
        return 0
    return total


def journal_lock(folder: Path) -> FileLock:
    """Held to rotate, rewrite or prune segments; appends to the newest segment need none."""
    return FileLock(folder / LOCK_FILE, timeout=LOCK_TIMEOUT)


def set_aside_tail(path: Path, read: SegmentRead) -> Path | None:
    """Cut a torn or damaged tail off ``path``: its bytes go beside it, then the file ends at
    its last good line. None when there was nothing to cut."""
    if read.good_bytes >= read.size:
        return None
    with path.open("rb") as handle:
        handle.seek(read.good_bytes)
        tail = handle.read()
    number = segment_number(path)
    label = f"{number:08d}" if number is not None else path.stem
    aside = path.with_name(f"cut-{label}-{read.good_bytes}.bin")
    atomic_write(aside, tail, FILE_MODE)
    with path.open("r+b") as handle:
        handle.truncate(read.good_bytes)
        handle.flush()
        os.fsync(handle.fileno())
    return aside


class JournalWriter:
    """The bot's end of the journal: appends batches (one fsync each), rotates segments, and
    takes an erased user's updates out of every segment."""

    def __init__(self, folder: Path, *, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.folder = folder
        self.segment_bytes = segment_bytes
        self._fd: int | None = None
        self._number = 0
        self._size = 0

    def open(self) -> list[str]:
        """Resume the newest segment (cutting a torn tail off it) or start the first one; what
        was cut, said in one line each."""
        self.folder.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        problems: list[str] = []
        with journal_lock(self.folder):
            segments = list_segments(self.folder)
            if segments:
                newest = segments[-1]
                self._number = segment_number(newest) or 1
                read = read_segment(newest)
                aside = set_aside_tail(newest, read) if read.problem else None
                if read.problem:
                    where = f"; the cut bytes are kept in {aside.name}" if aside else ""
                    problems.append(f"journal {read.problem}: cut there{where}")
            else:
                self._number = 1
            self._open_newest()
        for problem in problems:
            log.warning("%s", problem)
        return problems

    @property
    def path(self) -> Path:
        return self.folder / segment_name(self._number)

    def _open_newest(self) -> None:
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE)
        self._size = os.fstat(self._fd).st_size
        fsync_dir(self.folder)

    def append(self, entries: Sequence[JournalEntry]) -> None:
        """Write ``entries`` and make them durable (one fsync), before the batch they belong to
        commits and long before Telegram is told."""
        if not entries:
            return
        if self._fd is None:
            raise RuntimeError("the journal is not open")
        data = b"".join(encode(entry) for entry in entries)
        view = memoryview(data)
        try:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            os.fsync(self._fd)
        except OSError:
            # A full disk may take half a batch: cut it off again, or every later line would
            # sit behind a torn one (the next open cuts it if this fails too).
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._size)
            raise
        self._size += len(data)
        if self._size >= self.segment_bytes:
            with journal_lock(self.folder):
                self._close_fd()
                self._number += 1
                self._open_newest()

    def erase_user(self, user_id: int, update_id: int, at: float) -> int:
        """Record the erasure (kept for good) and rewrite each segment without the user's
        updates. How many entries were taken out."""
        record = encode(JournalEntry(ERASURE, update_id, at, user_id))
        erasures = self.folder / ERASURES_FILE
        fd = os.open(erasures, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE)
        try:
            os.write(fd, record)
            os.fsync(fd)
        finally:
            os.close(fd)
        removed = 0
        with journal_lock(self.folder):
            for path in list_segments(self.folder):
                removed += self._rewrite_without(path, user_id)
        return removed

    def _rewrite_without(self, path: Path, user_id: int) -> int:
        read = read_segment(path)
        kept = [
            line for line, e in zip(read.lines, read.entries, strict=True) if e.user_id != user_id
        ]
        removed = len(read.lines) - len(kept)
        if not removed:
            return 0
        active = path == self.path and self._fd is not None
        if active:
            self._close_fd()
        # A damaged tail is not the user's to keep or drop: it stays where it was, set aside.
        if read.problem:
            set_aside_tail(path, read)
        atomic_write(path, b"".join(kept), FILE_MODE)
        if active:
            self._open_newest()
        return removed

    def _close_fd(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def close(self) -> None:
        self._close_fd()


def set_aside_segments(folder: Path, label: str) -> Path | None:
    """Move every segment (and cut tail) into ``folder/set-aside-<label>/``, kept, never read
    again: a restore made on purpose to an earlier state must not be replayed forward. The
    erasures stay where they are. None when there was nothing to move."""
    with journal_lock(folder):
        moving = list_segments(folder) + sorted(folder.glob("cut-*.bin"))
        if not moving:
            return None
        target = folder / f"set-aside-{label}"
        target.mkdir(mode=DIR_MODE, exist_ok=True)
        for path in moving:
            os.replace(path, target / path.name)
        fsync_dir(target)
        fsync_dir(folder)
    return target
