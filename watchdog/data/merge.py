"""The merge: salvaged rows into the restored database, one transaction — rows whose primary
key it lacks, each kept only if it passes the table's constraints (a savepoint per row), and
only together with what they stand for (:data:`REQUIRES`); rows the page scan could not prove
live (``<table>__unguarded``) only when anchored (:data:`ANCHORS`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field

from watchdog.data.rowscan import columns_of, quote


@dataclass(frozen=True)
class Anchor:
    """A row is anchored when its ``column`` is a ``key`` of some row of ``table``."""

    column: str
    table: str
    key: str


REQUIRES: dict[str, tuple[Anchor, ...]] = {
    "processed_updates": (),
}
"""Rows merged only together with the effects they record (no anchor: never), checked after the
other tables are merged. A ``processed_updates`` row stands for every effect of its update — the
message, a note it saved, the conversation state it moved (persistence, never merged) — and its
message alone does not prove the rest: merged, it would make the journal's replay (or Telegram's
redelivery) skip an update whose note sat on a damaged page (a chaos campaign lost two notes so).
Left out, every update after the backup is handled again, in order, and the bot's effects are
idempotent by their natural keys (a message by chat and message id, a note by its source)."""

ANCHORS: dict[str, tuple[Anchor, ...]] = {
    "users": (Anchor("id", "messages", "user_id"),),
    "chats": (Anchor("id", "messages", "chat_id"),),
    "messages": (Anchor("user_id", "users", "id"), Anchor("chat_id", "chats", "id")),
    "notes": (Anchor("user_id", "users", "id"),),
    **REQUIRES,
}
"""What an unguarded row needs in the restored database (with the trusted salvaged rows merged,
and none of the other unguarded ones) to be merged: the first anchor whose column is not NULL
decides. ``/deleteme`` removes a user's row, messages, notes and private chat together, so old
copies of them on freed pages anchor each other only. A table not named is never merged from
unguarded rows. (The bot's schema file could publish these relations; for now they are here.)"""


@dataclass
class MergeCounts:
    """Rows per table: merged, rejected by a constraint, withheld (their anchor missing)."""

    merged: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)
    withheld: dict[str, int] = field(default_factory=dict)


def _primary_key(connection: sqlite3.Connection, table: str) -> list[str]:
    rows = connection.execute(f"PRAGMA table_info({quote(table)})").fetchall()
    keyed = sorted((row for row in rows if row[5]), key=lambda row: row[5])
    return [str(row[1]) for row in keyed]


def _condition(anchors: Sequence[Anchor]) -> str:
    """SQL: the salvaged row ``s`` is anchored in ``main`` (the first non-NULL column decides)."""
    if not anchors:
        return "0"
    clauses, nulls = [], []
    for anchor in anchors:
        test = f"s.{quote(anchor.column)} IN (SELECT {quote(anchor.key)} FROM main.{quote(anchor.table)})"
        clauses.append("(" + " AND ".join([*nulls, test]) + ")")
        nulls.append(f"s.{quote(anchor.column)} IS NULL")
    return " OR ".join(clauses)


Picked = tuple[str, list[str], list[tuple]]
"""``(table, columns, rows)`` chosen for insertion."""


def _pick(
    connection: sqlite3.Connection, table: str, source: str, condition: str, report: MergeCounts
) -> Picked | None:
    """The rows of ``salvage.<source>`` whose primary key ``main.<table>`` lacks and that meet
    ``condition``; those that do not are counted as withheld."""
    salvaged = [
        str(r[1]) for r in connection.execute(f"PRAGMA salvage.table_info({quote(source)})")
    ]
    target_columns = columns_of(connection, table)
    key = _primary_key(connection, table)
    if not target_columns or not salvaged or not key or not set(key) <= set(salvaged):
        return None
    shared = [c for c in target_columns if c in salvaged]
    join = " AND ".join(f"t.{quote(k)} IS s.{quote(k)}" for k in key)
    where = (
        f"FROM salvage.{quote(source)} AS s WHERE NOT EXISTS "
        f"(SELECT 1 FROM main.{quote(table)} AS t WHERE {join})"
    )
    total = int(connection.execute(f"SELECT count(*) {where}").fetchone()[0])
    rows = connection.execute(
        f"SELECT {', '.join('s.' + quote(c) for c in shared)} {where} AND ({condition}) "
        "ORDER BY s._rowid"
    ).fetchall()
    if total > len(rows):
        report.withheld[table] = report.withheld.get(table, 0) + total - len(rows)
    return table, shared, rows


def _insert(connection: sqlite3.Connection, picked: Picked | None, report: MergeCounts) -> None:
    """Each row in its own savepoint: one that breaks a constraint is left out (rejected)."""
    if picked is None:
        return
    table, shared, rows = picked
    insert = (
        f"INSERT INTO main.{quote(table)} ({', '.join(quote(c) for c in shared)}) "
        f"VALUES ({', '.join('?' for _ in shared)})"
    )
    merged = rejected = 0
    for row in rows:
        connection.execute("SAVEPOINT one_row")
        try:
            connection.execute(insert, row)
        except sqlite3.DatabaseError:
            connection.execute("ROLLBACK TO one_row")
            rejected += 1
        else:
            merged += 1
        connection.execute("RELEASE one_row")
    report.merged[table] = report.merged.get(table, 0) + merged
    if rejected:
        report.rejected[table] = report.rejected.get(table, 0) + rejected


def _has(connection: sqlite3.Connection, table: str) -> bool:
    query = "SELECT 1 FROM salvage.sqlite_master WHERE type = 'table' AND name = ?"
    return connection.execute(query, (table,)).fetchone() is not None


def merge_rows(connection: sqlite3.Connection, tables: Sequence[str]) -> MergeCounts:
    """On ``connection`` (the restored database, the salvage file attached as ``salvage``),
    inside the caller's transaction: the trusted rows of every table; then the anchored
    unguarded rows (all chosen before any is inserted, so they never anchor each other); last
    the tables with :data:`REQUIRES`."""
    report = MergeCounts()
    first = [t for t in tables if t not in REQUIRES]
    last = [t for t in tables if t in REQUIRES]
    for table in first:
        if _has(connection, table):
            _insert(connection, _pick(connection, table, table, "1", report), report)
    chosen = [
        _pick(connection, t, f"{t}__unguarded", _condition(ANCHORS.get(t, ())), report)
        for t in first
        if _has(connection, f"{t}__unguarded")
    ]
    for picked in chosen:
        _insert(connection, picked, report)
    for table in last:
        condition = _condition(REQUIRES[table])
        for source in (table, f"{table}__unguarded"):
            if _has(connection, source):
                _insert(connection, _pick(connection, table, source, condition, report), report)
    return report
