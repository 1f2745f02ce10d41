"""The rowid scan: every row of a table SQLite can still read, in rowid order, stepping over
pages that fail to read (a damaged leaf costs the rows on that leaf; the scan resumes on the next
readable one). The first of salvage's two readers (the other is :mod:`watchdog.data.pagescan`).
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from watchdog.data.database import connect
from watchdog.data.shapes import shape_of

BATCH = 500
MAX_PROBE = 1 << 62


@dataclass
class ScanCounts:
    """Where a scan had trouble, per table: stretches stepped over, rows not believed."""

    skipped_ranges: dict[str, int] = field(default_factory=dict)
    unbelieved: dict[str, int] = field(default_factory=dict)
    read: dict[str, tuple[int, int]] = field(default_factory=dict)  # rows and their rowids' sum


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _deny_side_doors(action: int, *args: object) -> int:
    """Authorizer for connections that read damaged files: no ATTACH, no writable schema tricks."""
    if action in (sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH):
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


def open_damaged(workdir: Path, damaged: Path, wal: Path | None) -> sqlite3.Connection:
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


def columns_of(connection: sqlite3.Connection, table: str) -> list[str]:
    return [str(row[1]) for row in connection.execute(f"PRAGMA table_info({quote(table)})")]


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
        query = f"SELECT 1 FROM {quote(table)} WHERE rowid = ?"
        return connection.execute(query, (rowid,)).fetchone() is not None
    except sqlite3.DatabaseError:
        return False


def _believable(
    connection: sqlite3.Connection,
    table: str,
    rows: list[tuple],
    last: int | None,
    counts: ScanCounts,
) -> tuple[list[tuple], int | None]:
    """The rows whose rowids make sense: increasing, and a long jump only when the b-tree finds
    the row at that rowid too (a damaged cell's rowid is not where the interior pages lead)."""
    kept = []
    for row in rows:
        rowid = int(row[0])
        if last is not None and rowid <= last:
            counts.unbelieved[table] = counts.unbelieved.get(table, 0) + 1
            continue
        far = last is None or rowid - last > JUMP  # the first row has nothing to compare with
        if far and not _exists(connection, table, rowid):
            counts.unbelieved[table] = counts.unbelieved.get(table, 0) + 1
            continue
        kept.append(row)
        last = rowid
    return kept, last


MAX_STALLS = 64
"""Steps in a row that yield nothing believable before the scan leaps (doubling) ahead."""


def scan_rows(connection: sqlite3.Connection, table: str, counts: ScanCounts) -> Iterator[tuple]:
    """Every readable row of ``table`` as (rowid, *columns), stepping over damaged pages.

    Reads in batches; when a batch fails, walks the same stretch one row at a time so the rows
    before the damage are kept, then seeks past the damaged page and goes on. Rows with
    unbelievable rowids (see ``_believable``) are left out; a stretch that yields nothing
    believable is stepped over, a row at a time and then by doubling leaps, so the scan always
    ends, after a number of reads bounded whatever a damaged tree answers.
    """
    select = f"SELECT rowid, * FROM {quote(table)} WHERE rowid >= ? ORDER BY rowid LIMIT ?"
    start, last, stalls = -MAX_PROBE, None, 0
    while start < MAX_PROBE:
        rows = _read(connection, select, start, BATCH)
        if rows is None:
            rows = []
            while (one := _read(connection, select, start, 1)) is not None:
                if not one:
                    return
                kept, last = _believable(connection, table, one, last, counts)
                if not kept:
                    rows = one
                    break
                stalls = 0
                yield kept[0]
                start = int(kept[0][0]) + 1
            else:
                counts.skipped_ranges[table] = counts.skipped_ranges.get(table, 0) + 1
                resume = _next_readable(connection, select, start)
                if resume is None:
                    return
                start = resume
                continue
        elif not rows:
            return
        kept, last = _believable(connection, table, rows, last, counts)
        if kept:
            stalls = 0
            yield from kept
            start = int(kept[-1][0]) + 1
            continue
        # What reads here is not believable (a damaged leaf that still parses): step over it.
        stalls += 1
        if stalls == 1:
            counts.skipped_ranges[table] = counts.skipped_ranges.get(table, 0) + 1
        # Forward, always (a damaged tree can answer a seek with rows below ``start``), and past
        # MAX_STALLS by doubling leaps, so a damaged stretch costs a bounded number of reads.
        # What a leap steps over is the page scan's to find (a skipped range makes it run).
        start += 1
        if stalls > MAX_STALLS:
            leap = 1 << min(stalls - MAX_STALLS, 62)
            start = max(start - 1 + leap, max(int(row[0]) for row in rows) + 1)


def read_view(
    damaged: Path,
    wal: Path | None,
    out: sqlite3.Connection,
    scratch: Path,
    tables: Sequence[str],
    counts: ScanCounts,
    problems: list[str],
) -> dict[str, bool | None]:
    """Copy every readable row of ``tables`` into ``out`` (one table each, keyed by rowid), the
    damaged file (copied into a folder under ``scratch``) read with ``wal`` or alone. Per table: True when SQLite read it to the end
    without trouble, False when it stepped over damage, None when it could not read it at all
    (the schema unreadable, the table missing). A row that does not fit the table's shape is
    left out (and the table is then not read without trouble)."""
    status: dict[str, bool | None] = dict.fromkeys(tables)
    with tempfile.TemporaryDirectory(prefix="salvage-", dir=scratch) as workdir:
        try:
            source = open_damaged(Path(workdir), damaged, wal)
        except sqlite3.DatabaseError as error:
            problems.append(f"cannot open the damaged file: {error}")
            return status
        try:
            for table in tables:
                try:
                    columns = columns_of(source, table)
                    shape = shape_of(source, table)
                except sqlite3.DatabaseError as error:
                    problems.append(f"{table}: schema unreadable: {error}")
                    continue
                if not columns:
                    continue
                names = ", ".join(quote(c) for c in columns)
                out.execute(
                    f"CREATE TABLE IF NOT EXISTS {quote(table)} (_rowid INTEGER PRIMARY KEY, {names})"
                )
                if columns_of(out, table)[1:] != columns:
                    problems.append(f"{table}: the two views disagree on its columns")
                    continue
                before = (counts.skipped_ranges.get(table, 0), counts.unbelieved.get(table, 0))
                marks = ", ".join("?" for _ in range(len(columns) + 1))
                insert = f"INSERT OR IGNORE INTO {quote(table)} VALUES ({marks})"
                batch: list[tuple] = []
                rows = rowid_sum = 0
                for row in scan_rows(source, table, counts):
                    if not shape.holds(row):  # read from a page of another table
                        counts.unbelieved[table] = counts.unbelieved.get(table, 0) + 1
                        continue
                    batch.append(row)
                    rows, rowid_sum = rows + 1, rowid_sum + int(row[0])
                    if len(batch) >= BATCH:
                        out.executemany(insert, batch)
                        batch.clear()
                out.executemany(insert, batch)
                out.commit()
                after = (counts.skipped_ranges.get(table, 0), counts.unbelieved.get(table, 0))
                status[table] = before == after
                counts.read[table] = (rows, rowid_sum)
        finally:
            source.close()
    return status
