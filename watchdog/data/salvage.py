"""Salvage: take back from a damaged database what the restored backup lacks.

Two readers, into a separate ``salvage.db`` beside the quarantine (kept, as evidence):

1. **The rowid scan** (:mod:`watchdog.data.rowscan`): SQLite reads each table in rowid order,
   stepping over pages that fail to read. (The sqlite3 shell's ``.recover`` needs the
   ``sqlite_dbpage`` table, which Debian's build of the shell lacks; this is the equal method.)
2. **The page scan** (:mod:`watchdog.data.pagescan`): the file's pages parsed directly. Every
   table's b-tree is walked from its root (the damaged file's, else the restored backup's), a
   rowid-only pass that costs about a second per 50 MB; a table SQLite read without trouble and
   whose complete walk reaches the same rows (count and rowids' sum) is done. For any other,
   rows are found on the leaves the walk reached or, below a broken tree, on any leaf page
   whose rows fit the table, and they replace what SQLite read at their rowid. The walk always
   runs because SQLite can go wrong silently: a damaged child pointer into a freed page reads as
   a run of believable rows (old ones, perhaps an erased user's); decoding every page of every
   table always would cost seconds more per 50 MB while the bot is down.

The damaged file is read as SQLite sees it: with its ``-wal`` (where the newest commits are).
The main file alone is read only for a table the ``-wal`` view cannot read at all, neither
through SQLite nor from a root page (a foreign ``-wal``): the main file under a ``-wal`` holds
the pages as they were before the last checkpoint, rows deleted since (an erased user's)
included, so it is never read for a table the ``-wal`` view has.

Only the bot's own append-only tables are merged: rows the live database lacks (by natural key:
the bot may have written since the restore, see :mod:`watchdog.data.merge`), in short steps,
each kept only if it passes the table's constraints, and only together with what they stand for
(``merge.REQUIRES``). Rows the page scan could not prove live
(``unguarded``: the free-list unreadable, see :mod:`watchdog.data.pagescan`) are merged only
when anchored (``merge.ANCHORS``). Key/value state (python-telegram-bot persistence) is never merged: a stale
value is worse than the restored one.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from conf.schema import MERGEABLE_TABLES
from watchdog.data import merge, pagescan
from watchdog.data.database import connect
from watchdog.data.pages import PageImage
from watchdog.data.rowscan import BATCH, ScanCounts, columns_of, quote, read_view

log = logging.getLogger(__name__)

MERGE_TABLES = MERGEABLE_TABLES
"""The bot's own append-only data, merged by primary key, as the bot's schema file marks it
(``-- @role mergeable``); in that file's order (users before messages)."""


@dataclass
class SalvageReport:
    read: dict[str, int] = field(default_factory=dict)
    merged: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)
    withheld: dict[str, int] = field(default_factory=dict)
    erased: dict[str, int] = field(default_factory=dict)
    """Merged rows of erased users, taken out again in the merge step's own transaction."""
    renumbered: dict[str, int] = field(default_factory=dict)
    """Merged under a new id: the bot had given theirs to a row it wrote after the restore."""
    skipped_ranges: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    pages: dict[str, object] | None = None
    seconds: float = 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "read": self.read,
            "merged": self.merged,
            "rejected": self.rejected,
            "withheld": self.withheld,
            "erased": self.erased,
            "renumbered": self.renumbered,
            "skipped_ranges": self.skipped_ranges,
            "problems": self.problems,
            "pages": self.pages,
            "seconds": round(self.seconds, 3),
        }


def salvage_to(
    damaged: Path,
    wal: Path | None,
    target: Path,
    report: SalvageReport,
    restored: Path | None = None,
    tables: Sequence[str] = MERGE_TABLES,
) -> None:
    """Copy every row of ``tables`` the damaged file still holds into a database at ``target``;
    ``restored`` (the installed backup) tells the page scan the schema, root pages and page map."""
    has_wal = wal is not None and wal.exists() and wal.stat().st_size > 0
    counts = ScanCounts()
    out = connect(target, "rwc")
    try:
        status = read_view(
            damaged, wal if has_wal else None, out, target.parent, tables, counts, report.problems
        )
        read = {t: counts.read.get(t) if status[t] else None for t in tables}
        rooted = _page_scan(damaged, wal if has_wal else None, out, report, restored, tables, read)
        alone = [t for t in tables if has_wal and status[t] is None and t not in rooted]
        if alone:
            report.problems.append(f"read from the main file alone: {', '.join(alone)}")
            read_view(damaged, None, out, target.parent, alone, counts, report.problems)
        report.skipped_ranges.update(counts.skipped_ranges)
        for table in tables:
            count = _count(out, table) + _count(out, f"{table}__unguarded")
            if count or status[table] is not None:
                report.read[table] = count
    finally:
        out.close()


def _count(out: sqlite3.Connection, table: str) -> int:
    try:
        return int(out.execute(f"SELECT count(*) FROM {quote(table)}").fetchone()[0])
    except sqlite3.OperationalError:  # no such table
        return 0


def _page_scan(
    damaged: Path,
    wal: Path | None,
    out: sqlite3.Connection,
    report: SalvageReport,
    restored: Path | None,
    tables: Sequence[str],
    read: dict[str, tuple[int, int] | None],
) -> set[str]:
    """The page scan of ``tables`` (see :func:`pagescan.scan`; ``read``: what SQLite read of
    each without trouble), rows staged then settled into ``out``; returns the tables whose tree
    was found from a root page."""
    try:
        ref = pagescan.reference(restored)
    except sqlite3.DatabaseError as error:
        report.problems.append(f"page scan: the restored database is unreadable: {error}")
        return set()
    targets = []
    for table in tables:
        shape = ref.shapes.get(table)
        if shape is None:
            continue
        names = [c.name for c in shape.columns]
        existing = columns_of(out, table)[1:]
        if existing and existing != names:
            report.problems.append(f"{table}: the page scan and SQLite disagree on its columns")
            continue
        spec = ", ".join(quote(n) for n in names)
        out.execute(
            f"CREATE TABLE IF NOT EXISTS {quote(table)} (_rowid INTEGER PRIMARY KEY, {spec})"
        )
        out.execute(f"DROP TABLE IF EXISTS {quote(table + '__pages')}")
        out.execute(
            f"CREATE TABLE {quote(table + '__pages')} (_rowid INTEGER, _page INTEGER, "
            f"_origin TEXT, {spec})"
        )
        targets.append(table)
    batches: dict[str, list[tuple[object, ...]]] = {table: [] for table in targets}

    def flush(table: str) -> None:
        marks = ", ".join("?" for _ in range(len(ref.shapes[table].columns) + 3))
        out.executemany(f"INSERT INTO {quote(table + '__pages')} VALUES ({marks})", batches[table])
        batches[table].clear()

    def sink(table: str, page: int, origin: str, row: tuple[object, ...]) -> None:
        batches[table].append((row[0], page, origin, *row[1:]))
        if len(batches[table]) >= BATCH:
            flush(table)

    try:
        with PageImage(damaged, wal, page_size_hint=ref.page_size) as image:
            found = pagescan.scan(image, ref, targets, sink, read)
    except OSError as error:
        report.problems.append(f"page scan: cannot read the damaged file: {error}")
        return set()
    for table in targets:
        if table in found.targets:
            flush(table)
            found.stale += _settle(out, table, [c.name for c in ref.shapes[table].columns])
            if found.freelist_read:
                _confirm(out, table, report)
        out.execute(f"DROP TABLE {quote(table + '__pages')}")  # old copies are no salvage
    out.commit()
    report.pages = found.as_dict()
    if found.targets:
        log.warning("page scan of %s: %s", damaged, report.pages)
    return {table for table, where in found.roots.items() if where != "unreadable"}


def _settle(out: sqlite3.Connection, table: str, names: list[str]) -> int:
    """Staged rows into the table or, unguarded, into ``<table>__unguarded``; rows on stale
    pages into neither. Returns the stale pages."""
    staged, spec = table + "__pages", ", ".join(quote(n) for n in names)
    out.execute(f"CREATE INDEX {quote(staged + '_rowid')} ON {quote(staged)} (_rowid)")
    out.execute("CREATE TEMP TABLE IF NOT EXISTS stale (page INTEGER PRIMARY KEY)")
    out.execute("DELETE FROM temp.stale")
    # Unguarded pages (the free-list unreadable) that share a rowid with another page, or hold
    # another version of a row SQLite read: a live tree holds each rowid once, so one of the two
    # is an old copy, and which one cannot be told. (The same row SQLite read is no sign: SQLite
    # may have read this very page. With the free-list read, an orphan page is no old copy: it
    # is what a damaged interior page no longer points to.)
    same = " AND ".join(f"t.{quote(n)} IS a.{quote(n)}" for n in names)
    out.execute(
        f"INSERT INTO temp.stale SELECT DISTINCT a._page FROM {quote(staged)} AS a "
        f"WHERE a._origin = '{pagescan.UNGUARDED}' AND (EXISTS (SELECT 1 FROM {quote(staged)} AS b "
        f"WHERE b._rowid = a._rowid AND b._page != a._page) OR EXISTS (SELECT 1 FROM "
        f"{quote(table)} AS t WHERE t._rowid = a._rowid AND NOT ({same})))"
    )
    fresh = (
        f"_page NOT IN (SELECT page FROM temp.stale) "
        f"AND _rowid NOT IN (SELECT _rowid FROM {quote(table)})"
    )
    unguarded = quote(table + "__unguarded")
    out.execute(f"CREATE TABLE IF NOT EXISTS {unguarded} (_rowid INTEGER PRIMARY KEY, {spec})")
    out.execute(
        f"INSERT OR IGNORE INTO {unguarded} SELECT _rowid, {spec} FROM {quote(staged)} "
        f"WHERE _origin = '{pagescan.UNGUARDED}' AND {fresh}"
    )
    # Rows the page scan proved live replace what SQLite read at their rowid: SQLite reads a
    # damaged tree wherever its pointers lead (a freed page, another table's), the walk does
    # not. The tree's rows go last, so they win over an orphan's.
    out.execute(
        f"INSERT OR REPLACE INTO {quote(table)} SELECT _rowid, {spec} FROM {quote(staged)} "
        f"WHERE _origin != '{pagescan.UNGUARDED}' AND _page NOT IN (SELECT page FROM temp.stale) "
        f"ORDER BY _origin = '{pagescan.TREE}', _rowid"
    )
    return int(out.execute("SELECT count(*) FROM temp.stale").fetchone()[0])


def _confirm(out: sqlite3.Connection, table: str, report: SalvageReport) -> None:
    """With the free-list read, the page scan found every live leaf of the table: a row SQLite
    read that is on none of them came through a damaged pointer (into a freed page, an old copy,
    perhaps of an erased user's row), and is left out."""
    gone = out.execute(
        f"DELETE FROM {quote(table)} WHERE _rowid NOT IN "
        f"(SELECT _rowid FROM {quote(table + '__pages')})"
    ).rowcount
    if gone:
        report.withheld[table] = report.withheld.get(table, 0) + gone
        report.problems.append(f"{table}: {gone} rows SQLite read are on no live page: left out")


AfterMerge = merge.AfterStep
"""Work done in each merge step's transaction (the erasures made again); rows it deleted."""


def open_proven(restored: Path) -> sqlite3.Connection:
    """The one connection left with a trusted schema, for writing into an installed database
    whose schema was proven the bot's own (its FTS5 triggers cannot run with trusted_schema
    off): salvage's merge, and the erasures made again (``watchdog.data.erasures``)."""
    connection = sqlite3.connect(restored, timeout=30)
    connection.execute("PRAGMA secure_delete = ON")  # what a delete removes is overwritten
    return connection


def merge_into(
    restored: Path,
    salvage: Path,
    report: SalvageReport,
    tables: Sequence[str] = MERGE_TABLES,
    then: AfterMerge | None = None,
) -> None:
    """Merge ``salvage`` into ``restored`` in short steps (:func:`merge.merge_rows`: the bot may
    be writing), ``then`` run in each step's transaction (the erasures made again: a salvaged
    row of an erased user — an old page, a stale ``-wal`` frame — is never live, not even until
    a crash)."""
    connection = open_proven(restored)
    connection.isolation_level = None  # each step opens its own BEGIN IMMEDIATE
    try:
        connection.execute("PRAGMA foreign_keys = ON")
        connection.execute("ATTACH DATABASE ? AS salvage", (f"file:{salvage}?mode=ro",))
        counts = merge.merge_rows(connection, tables, then)
        connection.execute("DETACH DATABASE salvage")
    finally:
        connection.close()
    for mine, theirs in (
        (report.merged, counts.merged),
        (report.rejected, counts.rejected),
        (report.withheld, counts.withheld),
        (report.renumbered, counts.renumbered),
        (report.erased, counts.erased),
    ):
        for table, count in theirs.items():
            mine[table] = mine.get(table, 0) + count


def salvage_and_merge(
    damaged: Path,
    wal: Path | None,
    salvage_file: Path,
    restored: Path | None,
    clock: Callable[[], float] = time.monotonic,
    tables: Sequence[str] = MERGE_TABLES,
    *,
    then: AfterMerge | None = None,
) -> SalvageReport:
    """Salvage ``damaged`` into ``salvage_file`` (kept), then merge into ``restored`` if given
    (``then`` run in the merge's transaction)."""
    started = clock()
    report = SalvageReport()
    salvage_file.unlink(missing_ok=True)
    salvage_to(damaged, wal, salvage_file, report, restored, tables)
    if restored is not None and salvage_file.exists():
        merge_into(restored, salvage_file, report, tables, then)
    report.seconds = clock() - started
    return report
