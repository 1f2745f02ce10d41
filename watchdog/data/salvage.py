"""Salvage: take back from a damaged database what the restored backup lacks.

The sqlite3 shell's ``.recover`` needs the ``sqlite_dbpage`` table, which Debian's build of the
shell (3.40) lacks ("SQL logic error"), so this is the equal method, in Python: read the damaged
file read-only through SQLite, table by table in rowid order, stepping over pages that fail to
read (a damaged leaf costs the rows on that leaf; the scan resumes on the next readable one).
Rows land in a separate ``salvage.db`` beside the quarantine, as evidence. Only the bot's own
append-only tables are then merged into the restored database: rows whose primary key the
restored database lacks, one by one, each kept only if it passes the table's constraints.

What it does not do: rows under a damaged interior page are out of reach of a rowid scan, and
key/value state (python-telegram-bot persistence) is never merged — a stale value is worse
than the restored one.
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from conf.schema import MERGEABLE_TABLES
from watchdog.data.database import connect

log = logging.getLogger(__name__)

MERGE_TABLES = MERGEABLE_TABLES
"""The bot's own append-only data, merged by primary key, as the bot's schema file marks it
(``-- @role mergeable``); in that file's order (users before messages)."""
BATCH = 500
MAX_PROBE = 1 << 62


@dataclass
class SalvageReport:
    read: dict[str, int] = field(default_factory=dict)
    merged: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)
    skipped_ranges: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "read": self.read,
            "merged": self.merged,
            "rejected": self.rejected,
            "skipped_ranges": self.skipped_ranges,
            "problems": self.problems,
            "seconds": round(self.seconds, 3),
        }


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _deny_side_doors(action: int, *args: object) -> int:
    """Authorizer for connections that read damaged files: no ATTACH, no writable schema tricks."""
    if action in (sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH):
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


def _open_damaged(workdir: Path, damaged: Path, wal: Path | None) -> sqlite3.Connection:
    """A private copy (with its -wal, if it has one) so nothing touches the quarantined files."""
    copy = workdir / "damaged.db"
    shutil.copyfile(damaged, copy)
    if wal is not None and wal.exists():
        shutil.copyfile(wal, workdir / "damaged.db-wal")
    connection = connect(copy, "rw", timeout=1)  # trusted_schema off: its views never run
    connection.set_authorizer(_deny_side_doors)
    try:
        connection.execute("PRAGMA query_only = ON")
    except sqlite3.DatabaseError:
        pass
    return connection


def _columns(connection: sqlite3.Connection, table: str) -> list[str]:
    return [str(row[1]) for row in connection.execute(f"PRAGMA table_info({_quote(table)})")]


def _read(
    connection: sqlite3.Connection, select: str, start: int, limit: int
) -> list[tuple] | None:
    """Rows from ``start`` on, or None when the read hits a page that cannot be read."""
    try:
        return connection.execute(select, (start, limit)).fetchall()
    except sqlite3.DatabaseError:
        return None


def _next_readable(connection: sqlite3.Connection, select: str, bad: int) -> int | None:
    """The smallest rowid above ``bad`` from which a read works again (a seek past the damaged
    page), found by doubling steps and then bisecting back; None if nothing further reads."""
    step = 1
    while bad + step < MAX_PROBE:
        if _read(connection, select, bad + step, 1) is not None:
            break
        step *= 2
    else:
        return None
    low, high = bad + step // 2 if step > 1 else bad, bad + step
    while high - low > 1:
        middle = (low + high) // 2
        if _read(connection, select, middle, 1) is None:
            low = middle
        else:
            high = middle
    return high


JUMP = 10_000
"""A rowid further than this past the previous one is confirmed by an exact lookup before it is
believed: a bit flip in a cell's rowid would otherwise send the scan past the rest of the table."""


def _exists(connection: sqlite3.Connection, table: str, rowid: int) -> bool:
    try:
        query = f"SELECT 1 FROM {_quote(table)} WHERE rowid = ?"
        return connection.execute(query, (rowid,)).fetchone() is not None
    except sqlite3.DatabaseError:
        return False


def _believable(
    connection: sqlite3.Connection, table: str, rows: list[tuple], last: int | None
) -> tuple[list[tuple], int | None]:
    """The rows whose rowids make sense: increasing, and a long jump only when the b-tree finds
    the row at that rowid too (a damaged cell's rowid is not where the interior pages lead)."""
    kept = []
    for row in rows:
        rowid = int(row[0])
        if last is not None and rowid <= last:
            continue
        far = last is None or rowid - last > JUMP  # the first row has nothing to compare with
        if far and not _exists(connection, table, rowid):
            continue
        kept.append(row)
        last = rowid
    return kept, last


MAX_STALLS = 64
"""Steps in a row that yield nothing believable before the scan jumps past what it read."""


def scan_rows(connection: sqlite3.Connection, table: str, report: SalvageReport) -> Iterator[tuple]:
    """Every readable row of ``table`` as (rowid, *columns), stepping over damaged pages.

    Reads in batches; when a batch fails, walks the same stretch one row at a time so the rows
    before the damage are kept, then seeks past the damaged page and goes on. Rows with
    unbelievable rowids (see ``_believable``) are left out; a stretch that yields nothing
    believable is stepped over, a row at a time and then by leaps, so the scan always ends.
    """
    select = f"SELECT rowid, * FROM {_quote(table)} WHERE rowid >= ? ORDER BY rowid LIMIT ?"
    start, last, stalls = -MAX_PROBE, None, 0
    while start < MAX_PROBE:
        rows = _read(connection, select, start, BATCH)
        if rows is None:
            rows = []
            while (one := _read(connection, select, start, 1)) is not None:
                if not one:
                    return
                kept, last = _believable(connection, table, one, last)
                if not kept:
                    rows = one
                    break
                stalls = 0
                yield kept[0]
                start = int(kept[0][0]) + 1
            else:
                report.skipped_ranges[table] = report.skipped_ranges.get(table, 0) + 1
                resume = _next_readable(connection, select, start)
                if resume is None:
                    return
                start = resume
                continue
        elif not rows:
            return
        kept, last = _believable(connection, table, rows, last)
        if kept:
            stalls = 0
            yield from kept
            start = int(kept[-1][0]) + 1
            continue
        # What reads here is not believable (a damaged leaf that still parses): step over it.
        stalls += 1
        if stalls == 1:
            report.skipped_ranges[table] = report.skipped_ranges.get(table, 0) + 1
        start = start + 1 if stalls <= MAX_STALLS else max(int(row[0]) for row in rows) + 1


def salvage_to(damaged: Path, wal: Path | None, target: Path, report: SalvageReport) -> None:
    """Copy every readable row of the mergeable tables into a database at ``target``.

    Read twice: with the file's ``-wal`` (where the newest commits are) and from the main file
    alone (in case the ``-wal`` is foreign or torn); rows are kept once per rowid.
    """
    has_wal = wal is not None and wal.exists() and wal.stat().st_size > 0
    views = [wal, None] if has_wal else [None]
    for view in views:
        _salvage_view(damaged, view, target, report)


def _salvage_view(damaged: Path, wal: Path | None, target: Path, report: SalvageReport) -> None:
    with tempfile.TemporaryDirectory(prefix="salvage-", dir=target.parent) as workdir:
        try:
            source = _open_damaged(Path(workdir), damaged, wal)
        except sqlite3.DatabaseError as error:
            report.problems.append(f"cannot open the damaged file: {error}")
            return
        try:
            out = connect(target, "rwc")
            try:
                for table in MERGE_TABLES:
                    try:
                        columns = _columns(source, table)
                    except sqlite3.DatabaseError as error:
                        report.problems.append(f"{table}: schema unreadable: {error}")
                        continue
                    if not columns:
                        continue
                    names = ", ".join(_quote(c) for c in columns)
                    out.execute(
                        f"CREATE TABLE IF NOT EXISTS {_quote(table)} "
                        f"(_rowid INTEGER PRIMARY KEY, {names})"
                    )
                    salvaged_columns = _columns(out, table)[1:]
                    if salvaged_columns != columns:
                        report.problems.append(f"{table}: the two views disagree on its columns")
                        continue
                    marks = ", ".join("?" for _ in range(len(columns) + 1))
                    insert = f"INSERT OR IGNORE INTO {_quote(table)} VALUES ({marks})"
                    count = 0
                    batch: list[tuple] = []
                    for row in scan_rows(source, table, report):
                        batch.append(row)
                        if len(batch) >= BATCH:
                            out.executemany(insert, batch)
                            count += len(batch)
                            batch.clear()
                    out.executemany(insert, batch)
                    count += len(batch)
                    out.commit()
                    report.read[table] = max(report.read.get(table, 0), count)
            finally:
                out.close()
        finally:
            source.close()


def _primary_key(connection: sqlite3.Connection, table: str) -> list[str]:
    rows = connection.execute(f"PRAGMA table_info({_quote(table)})").fetchall()
    keyed = sorted((row for row in rows if row[5]), key=lambda row: row[5])
    return [str(row[1]) for row in keyed]


def merge_into(restored: Path, salvage: Path, report: SalvageReport) -> None:
    """Insert salvaged rows the restored database lacks (by primary key), one transaction."""
    # The one connection left with a trusted schema: ``restored`` was proven to hold exactly the
    # bot's schema before it was installed, and its FTS5 triggers (which the inserts below fire)
    # cannot run with trusted_schema off.
    connection = sqlite3.connect(restored, timeout=30)
    try:
        connection.execute("PRAGMA foreign_keys = ON")
        connection.execute("ATTACH DATABASE ? AS salvage", (f"file:{salvage}?mode=ro",))
        connection.execute("BEGIN IMMEDIATE")
        for table in MERGE_TABLES:
            target_columns = _columns(connection, table)
            salvaged = [
                str(row[1])
                for row in connection.execute(f"PRAGMA salvage.table_info({_quote(table)})")
            ]
            key = _primary_key(connection, table)
            if not target_columns or not salvaged or not key or not set(key) <= set(salvaged):
                continue
            shared = [c for c in target_columns if c in salvaged]
            columns = ", ".join(_quote(c) for c in shared)
            join = " AND ".join(f"t.{_quote(k)} IS s.{_quote(k)}" for k in key)
            missing = connection.execute(
                f"SELECT {', '.join('s.' + _quote(c) for c in shared)} "
                f"FROM salvage.{_quote(table)} AS s WHERE NOT EXISTS "
                f"(SELECT 1 FROM main.{_quote(table)} AS t WHERE {join}) ORDER BY s._rowid"
            ).fetchall()
            insert = (
                f"INSERT INTO main.{_quote(table)} ({columns}) "
                f"VALUES ({', '.join('?' for _ in shared)})"
            )
            merged = rejected = 0
            for row in missing:
                connection.execute("SAVEPOINT one_row")
                try:
                    connection.execute(insert, row)
                except sqlite3.DatabaseError:
                    connection.execute("ROLLBACK TO one_row")
                    rejected += 1
                else:
                    merged += 1
                connection.execute("RELEASE one_row")
            report.merged[table] = merged
            if rejected:
                report.rejected[table] = rejected
        connection.execute("COMMIT")
        connection.execute("DETACH DATABASE salvage")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
    finally:
        connection.close()


def salvage_and_merge(
    damaged: Path,
    wal: Path | None,
    salvage_file: Path,
    restored: Path | None,
    clock: Callable[[], float] = time.monotonic,
) -> SalvageReport:
    """Salvage ``damaged`` into ``salvage_file`` (kept), then merge into ``restored`` if given."""
    started = clock()
    report = SalvageReport()
    salvage_file.unlink(missing_ok=True)
    salvage_to(damaged, wal, salvage_file, report)
    if restored is not None and salvage_file.exists():
        merge_into(restored, salvage_file, report)
    report.seconds = clock() - started
    return report
