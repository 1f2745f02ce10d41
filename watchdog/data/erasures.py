"""Erasures made again: the one function every path that installs a database calls before the
bot starts (recovery, salvage's merge, an operator's restore, local or offsite, with or without
replay), so that a user erased with ``/deleteme`` never comes back into the live database.

The erasure record (format and copies in :mod:`conf.erasures`) is gathered from every copy on
the disk — the live one in the journal folder, the one beside the backups — and whatever a
restore brought from offsite; the copies are healed to hold all of it. For each erased user, the
rows that date from before their (latest) erasure are deleted: messages up to the erasing
update (or sent before it), notes, the user and private-chat rows first seen before it, and
their persistence rows (user and private-chat data, conversations) last written before it. What
they wrote after the erasure, as a new user, stays. A row whose time cannot be read is taken as
old (erased): the safe side. Applying twice changes nothing the first time did not.

The watchdog never imports the bot: what "a user's rows" are is read from the schema the bot
publishes (``conf/schema.sql``), and persistence keys are read as JSON (the integers in a key
are the chat and user ids it names).
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from conf.journal import JournalEntry
from conf.layout import DataLayout
from conf.schema import expected_schema
from watchdog.data.database import connect, read_schema
from watchdog.data.erasure_copies import gather
from watchdog.data.salvage import AfterMerge, open_proven
from watchdog.rules.recovery import schema_differences

log = logging.getLogger(__name__)

USER_KEYED_STATE = ("user_data", "chat_data", "conversation")
"""Persistence kinds whose keys name users (bot and callback data name nobody)."""
_TIME_SHAPE = "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T*"


def _after(column: str) -> str:
    """SQL: ``column`` is a readable time later than the erasure (``:at``)."""
    return f"({column} GLOB '{_TIME_SHAPE}' AND {column} > :at)"


ERASE: tuple[tuple[str, str], ...] = (
    (
        "messages",
        "DELETE FROM messages WHERE (user_id = :uid OR chat_id = :uid) AND NOT ("
        f"{_after('sent_at')} AND update_id IS NOT NULL AND update_id > :update_id)",
    ),
    ("notes", f"DELETE FROM notes WHERE user_id = :uid AND NOT {_after('created_at')}"),
    ("users", f"DELETE FROM users WHERE id = :uid AND NOT {_after('first_seen')}"),
    ("chats", f"DELETE FROM chats WHERE id = :uid AND NOT {_after('first_seen')}"),
)
"""Per table, the statement that deletes an erased user's rows from before the erasure."""


@dataclass(frozen=True)
class Cutoff:
    """What one user's erasures cover: everything up to the latest of them."""

    user_id: int
    update_id: int
    at: float

    @property
    def at_text(self) -> str:
        """As the bot writes times (``bot.storage.values.timestamp``): sortable UTC text."""
        return datetime.fromtimestamp(self.at, UTC).isoformat(timespec="microseconds")


def cutoffs(erasures: Iterable[JournalEntry]) -> list[Cutoff]:
    latest: dict[int, Cutoff] = {}
    for entry in erasures:
        if entry.user_id is None:
            continue
        seen = latest.get(entry.user_id)
        latest[entry.user_id] = Cutoff(
            entry.user_id,
            max(entry.update_id, seen.update_id if seen else -1),
            max(entry.at, seen.at if seen else entry.at),
        )
    return sorted(latest.values(), key=lambda c: c.user_id)


@dataclass
class ErasureReport:
    erasures: int = 0
    """Users in the record."""
    rows: dict[str, int] = field(default_factory=dict)
    """Rows deleted now, per table (all zero when the database already had them erased)."""
    users: int = 0
    """Users some of whose rows were deleted now."""
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "erasures": self.erasures,
            "users": self.users,
            "rows": dict(self.rows),
            "problems": list(self.problems),
        }

    def summary(self) -> str:
        text = f"erasures: {self.erasures} in the record"
        if self.users:
            text += (
                f", made again for {self.users} users ({sum(self.rows.values())} rows that "
                "came back with the installed database removed)"
            )
        return text + (f" (PROBLEMS: {'; '.join(self.problems)})" if self.problems else "")


# -- the rows -------------------------------------------------------------------------------


def _tables(connection: sqlite3.Connection) -> set[str]:
    rows = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    return {str(row[0]) for row in rows}


def ids_in(text: object) -> set[int]:
    """The integers anywhere in a persistence key (its JSON text); none if it is not JSON."""
    try:
        value: Any = json.loads(str(text))
    except (ValueError, RecursionError):
        return set()
    found: set[int] = set()
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, bool):
            continue
        if isinstance(item, int):
            found.add(item)
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
    return found


def erase_rows(
    connection: sqlite3.Connection, erasures: Sequence[JournalEntry]
) -> tuple[dict[str, int], set[int]]:
    """Inside the caller's transaction on ``connection``: delete every erased user's rows from
    before their erasure. Rows deleted per table, and the users some rows of whom were."""
    counts: dict[str, int] = {}
    touched: set[int] = set()
    tables = _tables(connection)
    limits = cutoffs(erasures)
    for cutoff in limits:
        params = {"uid": cutoff.user_id, "update_id": cutoff.update_id, "at": cutoff.at_text}
        for table, statement in ERASE:
            if table in tables:
                deleted = max(connection.execute(statement, params).rowcount, 0)
                counts[table] = counts.get(table, 0) + deleted
                if deleted:
                    touched.add(cutoff.user_id)
    if "persistence" in tables and limits:
        by_user = {cutoff.user_id: cutoff.at_text for cutoff in limits}
        marks = ", ".join("?" for _ in USER_KEYED_STATE)
        rows = connection.execute(
            f'SELECT kind, name, "key", updated_at FROM persistence WHERE kind IN ({marks})',
            USER_KEYED_STATE,
        ).fetchall()
        doomed: list[tuple[str, str, str]] = []
        for kind, name, key, updated in rows:
            owners = {u for u in ids_in(key) if u in by_user and not later(updated, by_user[u])}
            if owners:
                doomed.append((kind, name, key))
                touched |= owners
        connection.executemany(
            'DELETE FROM persistence WHERE kind = ? AND name = ? AND "key" = ?', doomed
        )
        counts["persistence"] = len(doomed)
    return counts, touched


def later(value: object, at_text: str) -> bool:
    text = str(value) if value is not None else ""
    return len(text) > 10 and text[:4].isdigit() and text[10:11] == "T" and text > at_text


def _open(path: Path) -> sqlite3.Connection:
    """The installed database, for writing: with a trusted schema (its FTS5 triggers must run
    on delete) only when its schema is proven the bot's own, as salvage's merge does; else
    untrusted (a delete that would fire the file's own triggers then fails, loudly)."""
    try:
        trusted = not schema_differences(read_schema(path), expected_schema())
    except sqlite3.DatabaseError:
        trusted = False
    if trusted:
        return open_proven(path)
    connection = connect(path, "rw", timeout=30)
    connection.execute("PRAGMA secure_delete = ON")
    return connection


def erase_again(erasures: Sequence[JournalEntry]) -> AfterMerge:
    """What salvage's merge runs in its transaction: ``erasures`` made again."""

    def run(connection: sqlite3.Connection) -> dict[str, int]:
        return erase_rows(connection, erasures)[0]

    return run


def apply_to(path: Path, erasures: Sequence[JournalEntry], report: ErasureReport) -> None:
    """Erase again, in one transaction, on the database file at ``path`` (nobody else writes
    it: the bot is stopped). Failures are added to ``report.problems``, never raised."""
    if not erasures or not path.is_file():
        return
    try:
        connection = _open(path)
    except sqlite3.Error as error:
        report.problems.append(f"cannot open {path.name} to erase again: {error}")
        return
    try:
        connection.execute("BEGIN IMMEDIATE")
        counts, touched = erase_rows(connection, erasures)
        connection.execute("COMMIT")
    except sqlite3.Error as error:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        report.problems.append(f"erasing again in {path.name} failed: {error}")
        return
    finally:
        connection.close()
    for table, count in counts.items():
        if count:
            report.rows[table] = report.rows.get(table, 0) + count
    report.users += len(touched)


def apply_erasures(layout: DataLayout, extra: Iterable[bytes] = ()) -> ErasureReport:
    """The one call after any database is installed, before the bot starts: every erasure of
    every copy of the record made again on ``layout.database``. Idempotent; never raises for a
    bad record or file — every problem is in the report and logged as an error."""
    entries, problems = gather(layout, extra)
    report = ErasureReport(erasures=len(cutoffs(entries)), problems=problems)
    apply_to(layout.database, entries, report)
    if report.users:
        log.warning("%s", report.summary())
    for problem in report.problems:
        log.error("erasures: %s", problem)
    return report
