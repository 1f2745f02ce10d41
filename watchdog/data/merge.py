"""The merge: salvaged rows into the live database, in short steps — rows the database lacks,
each kept only if it passes the table's constraints (a savepoint per row), and only together
with what they stand for (:data:`REQUIRES`); rows the page scan could not prove live
(``<table>__unguarded``) only when anchored (:data:`ANCHORS`).

The merge may run while the bot writes (salvage runs after the bot is back), so a row is
"there" by its natural key, never by a surrogate id alone: a table whose primary key is its
rowid (``messages.id``, ``notes.id``) and that has a UNIQUE constraint is matched on that
constraint's columns (on every other column when one of them is NULL). A salvaged row whose
id the bot has since given to another row keeps everything but its id: it gets a new one
(counted ``renumbered``). Other tables (users and chats by their Telegram id) are matched by
primary key, as before. Each step is its own ``BEGIN IMMEDIATE`` transaction of at most
:data:`STEP_ROWS` rows, with the caller's ``then`` (the erasures made again) in it: the bot's
writes wait one step at most, and no erased user's row is ever committed.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from watchdog.data.rowscan import quote

STEP_ROWS = 500
"""Rows per merge transaction: a few milliseconds of the bot's writes waiting, at most."""


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
"""What an unguarded row needs in the live database (with the trusted salvaged rows merged,
and none of the other unguarded ones) to be merged: the first anchor whose column is not NULL
decides. ``/deleteme`` removes a user's row, messages, notes and private chat together, so old
copies of them on freed pages anchor each other only. A table not named is never merged from
unguarded rows. (The bot's schema file could publish these relations; for now they are here.)"""

AfterStep = Callable[[sqlite3.Connection], dict[str, int]]
"""Work done in each step's transaction (the erasures made again); rows it deleted per table."""


@dataclass
class MergeCounts:
    """Rows per table: merged, rejected by a constraint, withheld (their anchor missing),
    renumbered (merged under a new id: the bot had used theirs), erased (taken out again in the
    step's own transaction by ``then``)."""

    merged: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)
    withheld: dict[str, int] = field(default_factory=dict)
    renumbered: dict[str, int] = field(default_factory=dict)
    erased: dict[str, int] = field(default_factory=dict)
    steps: int = 0


def _add(counts: dict[str, int], table: str, n: int) -> None:
    if n:
        counts[table] = counts.get(table, 0) + n


@dataclass(frozen=True)
class Keys:
    """How a row of ``table`` is known to be there already (see the module's docstring)."""

    table: str
    columns: list[str]
    primary: list[str]
    surrogate: str | None
    """The rowid-alias primary key matched by natural key instead (None: match the primary key)."""
    natural: list[list[str]]

    def present(self, alias: str = "s") -> str:
        """SQL: salvaged row ``alias`` is already in ``main``."""
        if self.surrogate is None:
            join = " AND ".join(f"t.{quote(k)} IS {alias}.{quote(k)}" for k in self.primary)
            return f"EXISTS (SELECT 1 FROM main.{quote(self.table)} AS t WHERE {join})"
        tests = []
        for key in self.natural:
            whole = " AND ".join(f"{alias}.{quote(k)} IS NOT NULL" for k in key)
            join = " AND ".join(f"t.{quote(k)} = {alias}.{quote(k)}" for k in key)
            tests.append(
                f"({whole} AND EXISTS (SELECT 1 FROM main.{quote(self.table)} AS t WHERE {join}))"
            )
        others = [c for c in self.columns if c != self.surrogate]
        same = " AND ".join(f"t.{quote(c)} IS {alias}.{quote(c)}" for c in others)
        partial = " OR ".join(f"{alias}.{quote(k)} IS NULL" for key in self.natural for k in key)
        tests.append(
            f"(({partial}) AND EXISTS (SELECT 1 FROM main.{quote(self.table)} AS t WHERE {same}))"
        )
        return "(" + " OR ".join(tests) + ")"


def keys_of(connection: sqlite3.Connection, table: str) -> Keys | None:
    """The table's columns, primary key and natural keys as the live database declares them."""
    info = connection.execute(f"PRAGMA main.table_info({quote(table)})").fetchall()
    if not info:
        return None
    columns = [str(row[1]) for row in info]
    keyed = sorted((row for row in info if row[5]), key=lambda row: row[5])
    primary = [str(row[1]) for row in keyed]
    natural = []
    for index in connection.execute(f"PRAGMA main.index_list({quote(table)})").fetchall():
        if index[2] and index[3] == "u":  # unique, from a UNIQUE constraint
            cols = connection.execute(f"PRAGMA main.index_info({quote(index[1])})").fetchall()
            natural.append([str(c[2]) for c in sorted(cols)])
    rowid_alias = len(keyed) == 1 and str(keyed[0][2]).upper() == "INTEGER"
    surrogate = primary[0] if rowid_alias and natural else None
    return Keys(table, columns, primary, surrogate, natural)


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


@dataclass
class Picked:
    """Rows of ``salvage.<source>`` chosen for ``table``: their salvage rowids and the values of
    the columns both share."""

    keys: Keys
    source: str
    shared: list[str]
    rows: list[tuple]


def _pick(
    connection: sqlite3.Connection, table: str, source: str, condition: str, report: MergeCounts
) -> Picked | None:
    """The rows of ``salvage.<source>`` that ``main.<table>`` lacks and that meet
    ``condition``; those that do not are counted as withheld. Read outside any write lock."""
    salvaged = [
        str(r[1]) for r in connection.execute(f"PRAGMA salvage.table_info({quote(source)})")
    ]
    keys = keys_of(connection, table)
    if keys is None or not salvaged or not keys.primary or not set(keys.primary) <= set(salvaged):
        return None
    shared = [c for c in keys.columns if c in salvaged]
    where = f"FROM salvage.{quote(source)} AS s WHERE NOT {keys.present()}"
    total = int(connection.execute(f"SELECT count(*) {where}").fetchone()[0])
    order = "s._rowid"
    if keys.surrogate is not None and keys.surrogate in shared:
        # Rows whose id is free first, highest id first: once the first step is in, the bot's
        # next rows take ids above every salvaged one, and a row renumbered (last) gets one too.
        sid = f"s.{quote(keys.surrogate)}"
        order = f"EXISTS (SELECT 1 FROM main.{quote(table)} WHERE {quote(keys.surrogate)} = {sid}), {sid} DESC"
    rows = connection.execute(
        f"SELECT s._rowid, {', '.join('s.' + quote(c) for c in shared)} {where} "
        f"AND ({condition}) ORDER BY {order}"
    ).fetchall()
    _add(report.withheld, table, total - len(rows))
    return Picked(keys, source, shared, rows)


def _insert_step(connection: sqlite3.Connection, picked: Picked, rows: list[tuple]) -> tuple:
    """Inside the step's transaction: each row still absent is inserted in its own savepoint
    (one that breaks a constraint is left out), under a new id if the bot has used its own."""
    keys, table = picked.keys, picked.keys.table
    absent = f"SELECT 1 FROM salvage.{quote(picked.source)} AS s WHERE s._rowid = ? AND NOT {keys.present()}"
    mark = ", ".join("?" for _ in picked.shared)
    insert = (
        f"INSERT INTO main.{quote(table)} ({', '.join(map(quote, picked.shared))}) VALUES ({mark})"
    )
    fresh_id = [c for c in picked.shared if c != keys.surrogate]
    insert_new = (
        f"INSERT INTO main.{quote(table)} ({', '.join(map(quote, fresh_id))}) "
        f"VALUES ({', '.join('?' for _ in fresh_id)})"
    )
    where_id = picked.shared.index(keys.surrogate) if keys.surrogate in picked.shared else None
    merged = rejected = renumbered = 0
    for salvage_rowid, *values in rows:
        if connection.execute(absent, (salvage_rowid,)).fetchone() is None:
            continue  # the bot (or the journal's replay) wrote it meanwhile
        taken = where_id is not None and (
            connection.execute(
                f"SELECT 1 FROM main.{quote(table)} WHERE {quote(keys.surrogate or '')} = ?",
                (values[where_id],),
            ).fetchone()
            is not None
        )
        connection.execute("SAVEPOINT one_row")
        try:
            if taken:
                connection.execute(insert_new, [v for i, v in enumerate(values) if i != where_id])
            else:
                connection.execute(insert, values)
        except sqlite3.DatabaseError:
            connection.execute("ROLLBACK TO one_row")
            rejected += 1
        else:
            merged += 1
            renumbered += taken
        connection.execute("RELEASE one_row")
    return merged, rejected, renumbered


def _insert(
    connection: sqlite3.Connection,
    picked: Picked | None,
    report: MergeCounts,
    then: AfterStep | None,
) -> None:
    """The picked rows in steps of :data:`STEP_ROWS`, each its own transaction with ``then``."""
    if picked is None:
        return
    table = picked.keys.table
    for start in range(0, len(picked.rows), STEP_ROWS):
        connection.execute("BEGIN IMMEDIATE")
        try:
            merged, rejected, renumbered = _insert_step(
                connection, picked, picked.rows[start : start + STEP_ROWS]
            )
            erased = then(connection) if then is not None else {}
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
        report.steps += 1
        _add(report.merged, table, merged)
        _add(report.rejected, table, rejected)
        _add(report.renumbered, table, renumbered)
        for name, n in erased.items():
            _add(report.erased, name, n)


def _has(connection: sqlite3.Connection, table: str) -> bool:
    query = "SELECT 1 FROM salvage.sqlite_master WHERE type = 'table' AND name = ?"
    return connection.execute(query, (table,)).fetchone() is not None


def merge_rows(
    connection: sqlite3.Connection, tables: Sequence[str], then: AfterStep | None = None
) -> MergeCounts:
    """On ``connection`` (the live database in autocommit mode, the salvage file attached as
    ``salvage``): the trusted rows of every table; then the anchored unguarded rows (all chosen
    before any is inserted, so they never anchor each other); last the tables with
    :data:`REQUIRES`. Every step runs ``then`` in its transaction."""
    report = MergeCounts()
    first = [t for t in tables if t not in REQUIRES]
    last = [t for t in tables if t in REQUIRES]
    for table in first:
        if _has(connection, table):
            _insert(connection, _pick(connection, table, table, "1", report), report, then)
    chosen = [
        _pick(connection, t, f"{t}__unguarded", _condition(ANCHORS.get(t, ())), report)
        for t in first
        if _has(connection, f"{t}__unguarded")
    ]
    for picked in chosen:
        _insert(connection, picked, report, then)
    for table in last:
        condition = _condition(REQUIRES[table])
        for source in (table, f"{table}__unguarded"):
            if _has(connection, source):
                _insert(
                    connection, _pick(connection, table, source, condition, report), report, then
                )
    return report
