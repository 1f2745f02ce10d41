"""The watchdog's one way into the database file: read-only checks.

The bot is the only writer. Everything here opens the file read-only, with a short busy timeout,
and keeps its read transaction short (a long reader stops WAL checkpoints).
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

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

    @property
    def ok(self) -> bool:
        return self.state == "ok"


def connect_read_only(path: Path, timeout: float = 5.0) -> sqlite3.Connection:
    """A read-only connection; never creates the file."""
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=timeout)


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


def check_database(path: Path) -> DatabaseCheck:
    """Missing, not a database, failing ``PRAGMA integrity_check``, or ok with row counts."""
    started = time.monotonic()
    if not path.exists():
        return DatabaseCheck("missing", "no database file")
    try:
        stat = path.stat()
        size = stat.st_size
        if size == 0 and time.time() - stat.st_mtime < BEING_CREATED:
            return DatabaseCheck("missing", "an empty file just created (the bot is making it)")
        problem = read_header_problem(path)
        if problem:
            return DatabaseCheck("corrupt", problem, size, seconds=time.monotonic() - started)
        connection = connect_read_only(path)
        try:
            rows = connection.execute("PRAGMA integrity_check").fetchall()
            verdict = [str(row[0]) for row in rows]
            if verdict != ["ok"]:
                shown = "; ".join(verdict[:3]) + (" …" if len(verdict) > 3 else "")
                return DatabaseCheck(
                    "corrupt", f"integrity_check: {shown}", size, seconds=time.monotonic() - started
                )
            tables = count_rows(connection)
        finally:
            connection.close()
    except sqlite3.DatabaseError as error:
        if getattr(error, "sqlite_errorcode", None) in NOT_A_VERDICT:
            # Busy, locked, cannot open: says nothing about the file's health. Check again soon.
            return DatabaseCheck(
                "unknown", f"could not check: {error}", seconds=time.monotonic() - started
            )
        return DatabaseCheck(
            "corrupt", f"{type(error).__name__}: {error}", seconds=time.monotonic() - started
        )
    except OSError as error:
        return DatabaseCheck(
            "corrupt", f"I/O error: {error.strerror or error}", seconds=time.monotonic() - started
        )
    return DatabaseCheck("ok", "integrity_check ok", size, tables, time.monotonic() - started)


def count_rows(connection: sqlite3.Connection) -> dict[str, int]:
    """Rows per ordinary table (FTS shadow tables and sqlite_ internals left out)."""
    names = [
        row[0]
        for row in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' "
            "AND name NOT LIKE 'sqlite_%' AND sql NOT LIKE 'CREATE VIRTUAL%' ORDER BY name"
        )
    ]
    counts: dict[str, int] = {}
    for name in names:
        quoted = '"' + name.replace('"', '""') + '"'
        counts[name] = int(connection.execute(f"SELECT count(*) FROM {quoted}").fetchone()[0])
    return counts


def create_empty_database(path: Path) -> None:
    """A valid, empty WAL database (what the bot starts from after a loss with no backup), so a
    missing file is never mistaken for a first run, nor for a loss to recover, again."""
    connection = sqlite3.connect(path)
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
