"""The watchdog's one way into the database file: read-only checks, and the one way any SQLite
file is opened (:func:`connect`).

The bot is the only writer. Everything here opens the file read-only, with a short busy timeout,
and keeps its read transaction short (a long reader stops WAL checkpoints).

A database file is code as much as data (FIELD-NOTES, "Trust"): its views and triggers run when
it is read or written. Every connection the watchdog opens on the live database, a backup, a
candidate or a quarantined file goes through :func:`connect`, which turns ``trusted_schema``
off: functions with side effects and virtual tables cannot then be used from the file's own
views and triggers. (The one exception is salvage's merge into an installed database, whose
schema has just been proven to be the bot's own: its FTS5 triggers need a trusted schema.)
"""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from watchdog.data.opening import connect as connect

if TYPE_CHECKING:
    from conf.schema import SchemaRow

SQLITE_HEADER = b"SQLite format 3\x00"
BEING_CREATED = 10.0
"""An empty database file younger than this is one being created, not a damaged one."""
NOT_A_VERDICT = {
    getattr(sqlite3, name)
    for name in ("SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_CANTOPEN", "SQLITE_BUSY_RECOVERY")
    if hasattr(sqlite3, name)
}


@dataclass(frozen=True)
class DatabaseCheck:
    """The verdict on one database file."""

    state: str  # "ok" | "missing" | "corrupt" | "unknown" (could not check: busy, locked)
    detail: str
    size_bytes: int = 0
    tables: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    names: frozenset[str] | None = None
    """The tables when they were not counted (``tables`` is then empty): the start-up check
    leaves the counting to the full check that follows the launch."""

    @property
    def ok(self) -> bool:
        return self.state == "ok"

    @property
    def table_names(self) -> set[str]:
        return set(self.names) if self.names is not None else set(self.tables)


def connect_read_only(path: Path, timeout: float = 5.0) -> sqlite3.Connection:
    """A read-only connection; never creates the file."""
    return connect(path, "ro", timeout=timeout)


def read_schema(path: Path) -> list[SchemaRow]:
    """The ``(type, name, tbl_name, sql)`` rows of ``sqlite_schema`` of a file nobody writes,
    read without running anything the file holds. Raises sqlite3.DatabaseError."""
    connection = connect(path, "ro", immutable=True)
    try:
        rows = connection.execute("SELECT type, name, tbl_name, sql FROM sqlite_master").fetchall()
    finally:
        connection.close()
    return [(str(row[0]), str(row[1]), str(row[2]), row[3]) for row in rows]


def sqlite_version() -> str:
    return sqlite3.sqlite_version


def read_header_problem(path: Path) -> str | None:
    """Why the file cannot be an SQLite database, or None if its header looks right."""
    with path.open("rb") as handle:
        header = handle.read(100)
    if not header:
        return "the file is empty (0 bytes)"
    if len(header) < 100 or not header.startswith(SQLITE_HEADER):
        return "not an SQLite database (bad header)"
    return None


def check_database(
    path: Path, quick: bool = False, still: bool = False, workers: int | None = None
) -> DatabaseCheck:
    """Missing, not a database, failing ``PRAGMA integrity_check``, or ok with row counts.
    ``quick``: ``PRAGMA quick_check`` instead (no index contents compared: it misses about a
    third of what the full check finds; for a file known to be unchanged since a full check).
    The check itself runs in worker processes at low priority (``data.integrity``).

    ``still``: the caller holds the writer back (the start-up check, before the bot's launch).
    A still file with every commit in the main file is then checked split by table across the
    ``workers`` (default: one a core; fewer than two: the whole check, which is then cheaper),
    as a backup is, and its rows are not counted (the table names are given instead: the full
    check after the launch counts them). Should the file change all the same (its facts before
    and after differ), the verdict is "unknown"."""
    from watchdog.data.cleanstop import read_facts  # not in a check worker's imports
    from watchdog.data.integrity import check_integrity, workers_for

    if workers is None:
        workers = workers_for(os.cpu_count())
    pragma = "quick_check" if quick else "integrity_check"
    started = time.monotonic()
    if not path.exists():
        return DatabaseCheck("missing", "no database file")

    def unknown(error: object) -> DatabaseCheck:
        # Busy, locked, cannot open: says nothing about the file's health. Check again soon.
        return DatabaseCheck("unknown", f"could not check: {error}", seconds=elapsed())

    def elapsed() -> float:
        return time.monotonic() - started

    try:
        stat = path.stat()
        size = stat.st_size
        if size == 0 and time.time() - stat.st_mtime < BEING_CREATED:
            return DatabaseCheck("missing", "an empty file just created (the bot is making it)")
        problem = read_header_problem(path)
        if problem:
            return DatabaseCheck("corrupt", problem, size, seconds=elapsed())
        connection = connect_read_only(path)
        try:
            # Locked, busy, not a database: said here at once, before any worker starts.
            connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
            before = read_facts(path) if still and workers > 1 else None
            split = before is not None and not before.wal_size and not _journal(path).exists()
            verdict = check_integrity(path, frozen=split, quick=quick, workers=workers)
            if split and read_facts(path) != before:
                return unknown("the file changed during the start-up check")
            if verdict.inconclusive or verdict.error_code in NOT_A_VERDICT:
                return unknown(verdict.error)
            if verdict.error is not None:
                return DatabaseCheck("corrupt", verdict.error, size, seconds=elapsed())
            if verdict.problems:
                return DatabaseCheck(
                    "corrupt", f"{pragma}: {verdict.summary()}", size, seconds=elapsed()
                )
            if split:
                names = frozenset(table_names(connection))
                return DatabaseCheck("ok", f"{pragma} ok", size, {}, elapsed(), names)
            tables = count_rows(connection)
        finally:
            connection.close()
    except sqlite3.DatabaseError as error:
        if getattr(error, "sqlite_errorcode", None) in NOT_A_VERDICT:
            return unknown(error)
        return DatabaseCheck("corrupt", f"{type(error).__name__}: {error}", seconds=elapsed())
    except OSError as error:
        return DatabaseCheck("corrupt", f"I/O error: {error.strerror or error}", seconds=elapsed())
    return DatabaseCheck("ok", f"{pragma} ok", size, tables, elapsed())


def quick_check_database(
    path: Path, still: bool = False, workers: int | None = None
) -> DatabaseCheck:
    return check_database(path, quick=True, still=still, workers=workers)


def _journal(path: Path) -> Path:
    return Path(f"{path}-journal")


def table_names(connection: sqlite3.Connection) -> list[str]:
    """The tables :func:`count_rows` counts: ordinary ones (FTS virtual tables and sqlite_
    internals left out; their shadow tables are ordinary)."""
    return [
        str(row[0])
        for row in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' "
            "AND name NOT LIKE 'sqlite_%' AND sql NOT LIKE 'CREATE VIRTUAL%' ORDER BY name"
        )
    ]


def count_rows(connection: sqlite3.Connection) -> dict[str, int]:
    """Rows per table of :func:`table_names`."""
    counts: dict[str, int] = {}
    for name in table_names(connection):
        quoted = '"' + name.replace('"', '""') + '"'
        counts[name] = int(connection.execute(f"SELECT count(*) FROM {quoted}").fetchone()[0])
    return counts


def create_empty_database(path: Path) -> None:
    """A valid, empty WAL database (what the bot starts from after a loss with no backup), so a
    missing file is never mistaken for a first run, nor for a loss to recover, again."""
    connection = connect(path, "rwc")
    try:
        connection.execute("PRAGMA journal_mode=WAL")
    finally:
        connection.close()


def count_tables(path: Path) -> dict[str, int]:
    """Rows per table of a database known to be sound (no integrity check)."""
    connection = connect_read_only(path)
    try:
        return count_rows(connection)
    finally:
        connection.close()
