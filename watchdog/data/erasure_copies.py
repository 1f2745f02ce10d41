"""The erasure record gathered from every copy on the disk (format and copies in
:mod:`conf.erasures`): the live one in the journal folder and the one kept with the backups,
each healed to hold all of it. Applying it to a database is :mod:`watchdog.data.erasures`'s;
this is what a backup needs (the copy beside the backups kept up to date), without it.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from conf.erasures import live_record, merge_lines, read_record
from conf.files import LockBusy
from conf.journal import ERASURES_FILE, JournalEntry, decode
from conf.layout import DataLayout


def copies(layout: DataLayout) -> tuple[Path, Path]:
    """The live record and the one kept with the backups."""
    return live_record(layout.journal), layout.backups / ERASURES_FILE


def gather(layout: DataLayout, extra: Iterable[bytes] = ()) -> tuple[list[JournalEntry], list[str]]:
    """Every erasure any copy holds (and ``extra`` lines, e.g. fetched from offsite), each copy
    healed to hold them all; a damaged copy is set aside (kept) and named in the problems."""
    problems: list[str] = []
    lines: list[bytes] = []
    extra = list(extra)
    if not extra and not any(path.exists() for path in copies(layout)):
        return [], []  # no erasure ever: nothing to heal, and no folder or lock to create
    for path in copies(layout):
        read = read_record(path)
        if read.damaged:
            problems.append(f"erasure record damaged: {read.problem}")
        lines.extend(line for line in read.lines if line not in lines)
    lines.extend(line for line in extra if line not in lines)
    for path in copies(layout):
        try:
            _, aside = merge_lines(path, lines)
        except (OSError, LockBusy) as error:
            why = error.strerror if isinstance(error, OSError) and error.strerror else error
            problems.append(f"cannot write the erasure record {path}: {why}")
            continue
        if aside is not None:
            problems.append(f"the damaged record's bytes are kept in {aside}")
    entries = []
    for line in lines:
        try:
            entries.append(decode(line))
        except ValueError:  # merge_lines wrote none of these; extra lines are checked here
            problems.append("a line offered as an erasure is not one: left out")
    return entries, problems


def erasure_record_changed_at(layout: DataLayout) -> float | None:
    """When the live record was last written (None: no erasure yet)."""
    try:
        return live_record(layout.journal).stat().st_mtime
    except OSError:
        return None


def mirror_erasures(layout: DataLayout) -> list[str]:
    """Bring the copy kept with the backups up to date (after each backup): the problems."""
    return gather(layout)[1]
