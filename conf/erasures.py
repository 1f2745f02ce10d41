"""The erasure record: the one place that writes, reads and validates it.

Every ``/deleteme`` is recorded here, outside the database, before the database commits the
erasure: a user id, the update that asked, a time — nothing else. The record is never pruned,
and every path that installs an older database applies it again (``watchdog.data.erasures``),
so an erased user never comes back into the live database.

The live record is ``DATA_DIR/journal/erasures.jsonl``; copies of it travel with the backups
(``DATA_DIR/backups/erasures.jsonl``) and offsite (in every journal package). Lines are the
journal's (:func:`conf.journal.encode`), each read on its own: a damaged line costs that line
only, never the lines after it. A record with a damaged line is *damaged*: its bytes are kept
beside it (``erasures.jsonl.damaged-<time>``), never trusted, and whoever reads it says so loudly
(an erasure on that line may be lost; the other copies usually still hold it).

Every rewrite is the whole file through :func:`conf.files.atomic_write` under a lock: a crash or
a full disk leaves the previous record whole, and a write that fails raises (the bot then rolls
the erasure back rather than commit it unrecorded).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from conf.files import FILE_MODE, FileLock, atomic_write
from conf.journal_lines import (
    ERASURE,
    ERASURES_FILE,
    JournalEntry,
    JournalLineError,
    decode,
    encode,
)

LOCK_NAME = ".erasures.lock"
LOCK_TIMEOUT = 30.0
DAMAGED_INFIX = ".damaged-"


@dataclass
class RecordRead:
    """What one copy of the record holds."""

    path: Path
    entries: list[JournalEntry] = field(default_factory=list)
    lines: list[bytes] = field(default_factory=list)
    """The good lines as stored (``lines[i]`` holds ``entries[i]``)."""
    bad_lines: int = 0
    problem: str | None = None
    """Why the copy is damaged (None: every byte of it is a good line, or it does not exist)."""

    @property
    def damaged(self) -> bool:
        return self.problem is not None


def read_record(path: Path) -> RecordRead:
    """Every good erasure line of ``path``; never raises. A missing file is an empty record; a
    file that cannot be read, or holds a line that is not a valid erasure, is damaged."""
    read = RecordRead(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return read
    except OSError as error:
        read.problem = f"{path}: cannot be read ({error.strerror or error})"
        return read
    first_bad: int | None = None
    position = 0
    while position < len(data):
        end = data.find(b"\n", position)
        line = data[position:] if end < 0 else data[position : end + 1]
        try:
            entry = decode(line)
            if entry.kind != ERASURE:
                raise JournalLineError(f"a line of kind {entry.kind} in the erasure record")
        except JournalLineError as error:
            read.bad_lines += 1
            if first_bad is None:
                first_bad = position
                read.problem = f"{path}: {error} at byte {position}"
        else:
            if line not in read.lines:
                read.entries.append(entry)
                read.lines.append(line)
        position += len(line)
    if read.bad_lines > 1:
        read.problem = f"{read.problem} ({read.bad_lines} bad lines in all)"
    return read


def record_lock(folder: Path) -> FileLock:
    return FileLock(folder / LOCK_NAME, timeout=LOCK_TIMEOUT)


def set_aside_damaged(read: RecordRead) -> Path | None:
    """Keep a damaged copy's bytes beside it (``<name>.damaged-<time>``) before it is rewritten
    with its good lines; None when there is nothing to keep."""
    if not read.damaged or not read.path.exists():
        return None
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    aside = read.path.with_name(f"{read.path.name}{DAMAGED_INFIX}{stamp}")
    suffix = 1
    while aside.exists():
        suffix += 1
        aside = read.path.with_name(f"{read.path.name}{DAMAGED_INFIX}{stamp}-{suffix}")
    try:
        data = read.path.read_bytes()
    except OSError:
        os.replace(read.path, aside)  # unreadable: moved whole, still kept
        return aside
    atomic_write(aside, data, FILE_MODE)
    return aside


def merge_lines(path: Path, lines: Iterable[bytes]) -> tuple[int, Path | None]:
    """Make ``path`` hold its own good lines and every erasure line of ``lines`` it lacks (each
    decoded first: a line that is not an erasure is never written). A damaged ``path`` is set
    aside first and rewritten whole. Returns how many lines were added and where the damaged
    bytes went. Raises OSError when the record cannot be written (nothing changed then)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with record_lock(path.parent):
        read = read_record(path)
        have = set(read.lines)
        missing: list[bytes] = []
        for line in lines:
            with contextlib.suppress(JournalLineError):
                if decode(line).kind == ERASURE and line not in have:
                    have.add(line)
                    missing.append(line)
        if not missing and not read.damaged:
            return 0, None
        aside = set_aside_damaged(read)
        atomic_write(path, b"".join([*read.lines, *missing]), FILE_MODE)
        return len(missing), aside


def record_erasure(journal_folder: Path, user_id: int, update_id: int, at: float) -> JournalEntry:
    """Durably record one erasure in the live record (fsynced before this returns). Raises
    OSError when it cannot be: the caller must not commit the erasure then."""
    entry = JournalEntry(ERASURE, update_id, at, user_id)
    merge_lines(journal_folder / ERASURES_FILE, [encode(entry)])
    return entry


def live_record(journal_folder: Path) -> Path:
    return journal_folder / ERASURES_FILE
