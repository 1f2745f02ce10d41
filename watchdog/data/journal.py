"""The watchdog's hands on the update journal (``DATA_DIR/journal``, format in ``conf.journal``):
reading its shape for /health and the disk guard, removing the segments ``rules.journal``
lets go, and writing back into the folder what a restore fetched from the offsite branch.

The bot is the journal's writer; the watchdog only removes closed segments (under
``journal_lock``, as the bot rotates and rewrites under it) and, while the bot is stopped for
a restore, adds segments it does not have. ``erasures.jsonl`` and the ``cut-*.bin`` files are
never removed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from conf.erasures import merge_lines
from conf.files import FILE_MODE, atomic_write, fsync_dir
from conf.journal import (
    ERASURES_FILE,
    JournalLineError,
    decode,
    journal_bytes,
    journal_lock,
    list_segments,
    read_segment,
    segment_name,
    segment_number,
    set_aside_tail,
)
from watchdog.rules.journal import Prune, Segment

log = logging.getLogger(__name__)


# -- the journal's shape -------------------------------------------------------------------


@dataclass(frozen=True)
class _Read:
    newest_at: float | None
    oldest_at: float | None
    problem: str | None
    good_bytes: int


_cache: dict[tuple[str, int, int], _Read] = {}
"""Closed segments change only when rewritten (a new size and mtime): read each once."""


def _read(path: Path, newest: bool) -> tuple[int, _Read]:
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    found = _cache.get(key)
    if found is None:
        read = read_segment(path)
        problem = read.problem
        if newest and problem and b"\n" not in path.read_bytes()[read.good_bytes :]:
            problem = None  # the line the bot is writing right now, not a damage
        times = [entry.at for entry in read.entries]
        found = _Read(max(times, default=None), min(times, default=None), problem, read.good_bytes)
        if not newest:
            if len(_cache) > 4096:
                _cache.clear()
            _cache[key] = found
    return stat.st_size, found


@dataclass
class JournalScan:
    segments: list[Segment] = field(default_factory=list)
    total_bytes: int = 0
    """Every file of the folder (segments, erasures, set-aside tails)."""
    oldest_at: float | None = None
    newest_at: float | None = None
    problems: list[str] = field(default_factory=list)


def scan_journal(folder: Path) -> JournalScan:
    """The journal as it is now, for decisions and /health; never raises for a bad file."""
    scan = JournalScan(total_bytes=journal_bytes(folder))
    paths = list_segments(folder)
    for index, path in enumerate(paths):
        number = segment_number(path)
        assert number is not None
        try:
            size, read = _read(path, newest=index == len(paths) - 1)
        except OSError as error:
            scan.problems.append(f"{path.name}: {error.strerror or error}")
            continue
        scan.segments.append(Segment(number, read.newest_at, size))
        if read.problem:
            scan.problems.append(read.problem)
        if read.oldest_at is not None:
            scan.oldest_at = min(scan.oldest_at or read.oldest_at, read.oldest_at)
        if read.newest_at is not None:
            scan.newest_at = max(scan.newest_at or read.newest_at, read.newest_at)
    return scan


# -- pruning -------------------------------------------------------------------------------


def remove_segments(folder: Path, plan: Prune) -> list[int]:
    """Remove the planned segments under the journal's lock, each only if it is still closed
    (a higher number exists). A damaged tail is set aside (``cut-*.bin``) before its segment
    goes: it is not ours to judge. Returns the numbers removed."""
    if not plan.numbers:
        return []
    removed: list[int] = []
    with journal_lock(folder):
        present = {segment_number(p): p for p in list_segments(folder)}
        highest = max((n for n in present if n is not None), default=0)
        for number in plan.numbers:
            path = present.get(number)
            if path is None or number >= highest:
                continue
            read = read_segment(path)
            if read.problem:
                set_aside_tail(path, read)
            path.unlink(missing_ok=True)
            removed.append(number)
        if removed:
            fsync_dir(folder)
    return removed


# -- a restore: segments fetched from the branch, back into the folder ---------------------


class FetchedPackage(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def chunks(self) -> Sequence[tuple[str, int, bytes]]:
        """(file name, offset in that file, its bytes), in the order they were written."""
        ...


class FetchedJournal(Protocol):
    @property
    def packages(self) -> Sequence[FetchedPackage]: ...

    @property
    def refused(self) -> Sequence[str]: ...


@runtime_checkable
class JournalSource(Protocol):
    """What a restore needs of the offsite store to bring the journal back."""

    def fetch_journal(self, since: float) -> FetchedJournal: ...


@dataclass
class JournalRestore:
    packages: int = 0
    updates: int = 0
    segments: list[str] = field(default_factory=list)
    """Written into the folder."""
    kept_local: list[str] = field(default_factory=list)
    """Already in the folder: the local copy is kept, the fetched one not written."""
    erasures_added: int = 0
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "packages": self.packages,
            "updates": self.updates,
            "segments": list(self.segments),
            "kept_local": list(self.kept_local),
            "erasures_added": self.erasures_added,
            "problems": list(self.problems),
        }

    def summary(self) -> str:
        text = (
            f"journal: {self.updates} updates in {len(self.segments)} segments from "
            f"{self.packages} offsite packages"
        )
        return text + (f" ({'; '.join(self.problems)})" if self.problems else "")


def _good_lines(package_id: str, name: str, data: bytes) -> tuple[list[bytes], str | None]:
    """Each line of ``data`` that decodes, up to the first one that does not (named)."""
    lines: list[bytes] = []
    position = 0
    while position < len(data):
        end = data.find(b"\n", position)
        line = data[position:] if end < 0 else data[position : end + 1]
        try:
            decode(line)
        except JournalLineError as error:
            return lines, f"package {package_id}, {name}: {error} at byte {position}"
        lines.append(line)
        position += len(line)
    return lines, None


def assemble(
    packages: Sequence[FetchedPackage],
) -> tuple[dict[int, bytes], list[bytes], int, list[str]]:
    """Segments (number → content) and erasure lines rebuilt from fetched packages, oldest
    first: a chunk at offset 0 is its segment whole (it replaces what came before), any other
    continues it. Every line is decoded; the first bad one ends what is taken (reported).
    Returns the segments, the erasure lines, the updates taken and the problems."""
    segments: dict[int, bytearray] = {}
    erasures: list[bytes] = []
    updates = 0
    for package in packages:
        for name, offset, data in package.chunks:
            number = segment_number(Path(name)) if name != ERASURES_FILE else None
            if name != ERASURES_FILE and (number is None or Path(name).name != name):
                return _done(segments, erasures, updates, f"package {package.id}: {name!r}?")
            lines, problem = _good_lines(package.id, name, data)
            if number is None:
                erasures.extend(line for line in lines if line not in erasures)
            else:
                content = segments.setdefault(number, bytearray())
                if offset == 0:
                    content.clear()
                content.extend(b"".join(lines))
                updates += len(lines)
            if problem:
                return _done(segments, erasures, updates, problem + ": nothing after it taken")
    return _done(segments, erasures, updates, None)


def _done(
    segments: dict[int, bytearray], erasures: list[bytes], updates: int, problem: str | None
) -> tuple[dict[int, bytes], list[bytes], int, list[str]]:
    built = {number: bytes(content) for number, content in segments.items() if content}
    return built, erasures, updates, [problem] if problem else []


def install_fetched(folder: Path, fetched: FetchedJournal) -> JournalRestore:
    """Write what was fetched into the journal folder: each segment the folder lacks (a
    segment already there is the better copy and stays), and the erasure records it lacks.
    The bot must be stopped (a restore runs before it is launched)."""
    report = JournalRestore(packages=len(fetched.packages))
    report.problems.extend(fetched.refused)
    segments, erasure_lines, report.updates, problems = assemble(fetched.packages)
    report.problems.extend(problems)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    with journal_lock(folder):
        for number, content in sorted(segments.items()):
            path = folder / segment_name(number)
            if path.exists():
                report.kept_local.append(path.name)
                continue
            atomic_write(path, content, FILE_MODE)
            report.segments.append(path.name)
        if erasure_lines:
            try:
                report.erasures_added, _ = merge_lines(folder / ERASURES_FILE, erasure_lines)
            except OSError as error:
                report.problems.append(f"cannot write the erasure records: {error}")
    for problem in report.problems:
        log.error("journal restore: %s", problem)
    return report


def restore_journal(folder: Path, source: object, since: float) -> JournalRestore | None:
    """After an offsite backup begun at ``since`` was installed: the journal packages on the
    branch holding updates it may lack, written into ``folder`` (None: the source cannot
    fetch journals). Never raises for the branch: a failure is one problem in the report."""
    if not isinstance(source, JournalSource):
        return None
    try:
        fetched = source.fetch_journal(since)
    except Exception as error:  # the backup is installed; the journal is best effort
        log.error("journal restore: fetching the journal packages failed: %s", error)
        return JournalRestore(problems=[f"fetching the journal packages failed: {error}"])
    report = install_fetched(folder, fetched)
    log.warning("%s", report.summary())
    return report
