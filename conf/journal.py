"""The update journal's format: the one place that writes, reads and validates it.

Every update the bot acknowledges to Telegram is first appended here, in the same group commit
as its database batch, so a database lost or damaged after its newest backup can be rebuilt by
replaying the updates the restored copy never saw. The bot writes it (:class:`JournalWriter`);
the bot's replay, the watchdog's pruning and its offsite copy read it (:func:`read_segment`,
:func:`read_journal`).

A folder ``DATA_DIR/journal`` holds numbered segments ``segment-00000001.jsonl``; the highest
number is the one being written, the others are closed. ``erasures.jsonl`` keeps the record of
every ``/deleteme`` (a user id and a time, nothing else; written and read by
:mod:`conf.erasures`): erasures outlive the segments, so a restore of a backup older than an
erasure erases again. One line per entry::

    <16 hex digits of sha256(payload)> <payload: one JSON object>\\n

A line that does not end in a newline, fails its checksum or does not hold a valid entry ends
what is read of its segment; the writer cuts such a tail off the segment it resumes (the bytes
set aside beside it as ``cut-*.bin``, never deleted) and says so.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from conf.erasures import read_record, record_erasure
from conf.files import DIR_MODE, FILE_MODE, FileLock, atomic_write, fsync_dir
from conf.journal_lines import ERASURE as ERASURE
from conf.journal_lines import ERASURES_FILE as ERASURES_FILE
from conf.journal_lines import FORMAT as FORMAT
from conf.journal_lines import UPDATE as UPDATE
from conf.journal_lines import JournalEntry as JournalEntry
from conf.journal_lines import JournalLineError as JournalLineError
from conf.journal_lines import decode as decode
from conf.journal_lines import encode as encode

log = logging.getLogger(__name__)

SEGMENT_BYTES = 4 * 1024 * 1024
"""A segment is closed once it holds this much; closed segments are what pruning removes."""
LOCK_TIMEOUT = 30.0
"""Seconds a rewrite, a rotation or a pruning waits for another one to finish."""
LOCK_FILE = ".lock"
_SEGMENT = re.compile(r"^segment-(\d{8})\.jsonl$")


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
    """The erasure record's good lines (:mod:`conf.erasures`: a bad line costs that line only)."""
    record = read_record(folder / ERASURES_FILE)
    if record.problem:
        problems.append(f"erasure record damaged: {record.problem}")
    return record.entries


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
        """Record the erasure (kept for good; raises OSError, before anything else changed, when
        it cannot be) and rewrite each segment without the user's updates. How many entries
        were taken out."""
        record_erasure(self.folder, user_id, update_id, at)
        return self.remove_user(user_id)

    def remove_user(self, user_id: int) -> int:
        """Rewrite each segment without the user's updates; how many entries were taken out."""
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
        try:
            # A damaged tail is not the user's to keep or drop: it stays where it was, set aside.
            if read.problem:
                set_aside_tail(path, read)
            atomic_write(path, b"".join(kept), FILE_MODE)
        finally:
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
