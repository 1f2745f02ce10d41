"""A quarantined file's salvage, after the bot is back: read it into ``salvage.db`` (the rowid
scan and the page scan, :mod:`watchdog.data.salvage`), then merge into the live database in
short steps while the bot writes (:mod:`watchdog.data.merge`), the erasure record read again
inside every step's transaction (an erasure the bot made a second ago is in force for the rows
merged now).

Which quarantines are owed a salvage is in their notes: ``salvage.status`` ``pending`` with a
``restored_from`` (merge into the live database), or with ``fresh_start`` (no backup: the rows
are kept in ``salvage.db`` for by-hand use). The status becomes ``merged`` or ``kept`` only once
the work is done: a watchdog stopped or killed mid-way leaves it pending, and the next start
does it again (the merge is idempotent: rows the live database has are never merged twice). The
quarantined files are never deleted.

``python -m watchdog.data.salvage_job ROOT DATABASE FOLDER`` is the worker (``nice`` +10: the
bot answers first): it reads, says ``{"phase": "read"}`` on stdout, waits for ``merge`` on
stdin (the watchdog holds its data lock meanwhile: no restore or backup swaps the file under
the merge), merges, and answers the report as one JSON line. Its stdin closing (the watchdog
gone) ends it at once.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from conf.layout import DataLayout
from watchdog.data.erasure_copies import gather
from watchdog.data.erasures import erase_rows
from watchdog.data.quarantine import Quarantined, list_quarantine, update_note
from watchdog.data.salvage import SalvageReport, merge_into, salvage_to
from watchdog.data.workerproc import lower_priority

log = logging.getLogger(__name__)

PENDING = "pending"


def owed(entry: Quarantined) -> bool:
    """Whether this quarantine's salvage is still to do (and can be done now)."""
    note = entry.note
    if note.get("salvage", {}).get("status") != PENDING or entry.database is None:
        return False
    return bool(note.get("restored_from")) or bool(note.get("fresh_start"))


def owed_salvages(layout: DataLayout) -> list[Quarantined]:
    return [entry for entry in list_quarantine(layout) if owed(entry)]


def read_damaged(layout: DataLayout, entry: Quarantined) -> SalvageReport:
    """The first half: what the quarantined file still holds, into its ``salvage.db``. The live
    database (the installed backup, a page-for-page copy of the same schema) tells the page scan
    the schema and root pages."""
    report = SalvageReport()
    assert entry.database is not None
    salvage_file = entry.folder / "salvage.db"
    salvage_file.unlink(missing_ok=True)
    wal = entry.folder / f"{entry.note.get('database_name')}-wal"
    merging = bool(entry.note.get("restored_from")) and layout.database.exists()
    salvage_to(entry.database, wal, salvage_file, report, layout.database if merging else None)
    return report


def erasures_now(layout: DataLayout) -> Callable[[sqlite3.Connection], dict[str, int]]:
    """For each merge step, inside its transaction: the erasure record as it is now, applied."""

    def run(connection: sqlite3.Connection) -> dict[str, int]:
        return erase_rows(connection, gather(layout)[0])[0]

    return run


def merge_damaged(layout: DataLayout, entry: Quarantined, report: SalvageReport) -> Quarantined:
    """The second half: merge (or, after a fresh start, keep) and say so in the note."""
    salvage_file = entry.folder / "salvage.db"
    merging = bool(entry.note.get("restored_from")) and layout.database.exists()
    if merging and salvage_file.exists():
        merge_into(layout.database, salvage_file, report, then=erasures_now(layout))
    status = "merged" if merging else "kept"
    entry = update_note(entry, salvage={"status": status, **report.as_dict()})
    log.warning(
        "salvage of %s: read %s, merged %s, rejected %s, renumbered %s",
        entry.folder.name,
        report.read,
        report.merged,
        report.rejected,
        report.renumbered,
    )
    return entry


def salvage_entry(layout: DataLayout, entry: Quarantined) -> SalvageReport:
    """Both halves in one go (the worker's work, for a caller that holds the data itself)."""
    report = read_damaged(layout, entry)
    merge_damaged(layout, entry, report)
    return report


# -- the worker ---------------------------------------------------------------------------------


_go = threading.Event()
"""Set when the watchdog says ``merge`` (it holds its data lock from then until our report)."""


def _end_with_stdin() -> None:
    """The watchdog's end closes our stdin: stop at once (an unfinished step rolls back)."""
    for line in sys.stdin:
        if line.strip() == "merge":
            _go.set()
    os._exit(3)


def work(root: Path, database: Path, folder: Path) -> int:
    # Not the idle class: the merge holds the watchdog's data lock, and a worker held off the CPU
    # while holding it would hold up every backup and check waiting for that lock.
    lower_priority(idle=False)
    threading.Thread(target=_end_with_stdin, daemon=True).start()
    layout = DataLayout(root=root, database=database)
    entry = next((e for e in list_quarantine(layout) if e.folder == folder and owed(e)), None)
    if entry is None:
        print(json.dumps({"phase": "done", "status": "not owed"}), flush=True)
        return 0
    started = time.monotonic()
    report = read_damaged(layout, entry)
    print(json.dumps({"phase": "read", "read": report.read}), flush=True)
    _go.wait()
    entry = merge_damaged(layout, entry, report)
    seconds = round(time.monotonic() - started, 3)
    entry = update_note(entry, salvage={**entry.note["salvage"], "seconds": seconds})
    print(json.dumps({"phase": "done", **entry.note["salvage"]}), flush=True)
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    raise SystemExit(work(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])))
