"""What a record of each table looks like, from a healthy database's schema: the test the page
scan (:mod:`watchdog.data.pagescan`) puts a row found on a page to before it says which table the
row is of."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass


def affinity(declared: str) -> str:
    """A column's type affinity from its declared type (SQLite's rules, in their order)."""
    kind = declared.upper()
    if "INT" in kind:
        return "INTEGER"
    if any(word in kind for word in ("CHAR", "CLOB", "TEXT")):
        return "TEXT"
    if "BLOB" in kind or not kind:
        return "BLOB"
    if any(word in kind for word in ("REAL", "FLOA", "DOUB")):
        return "REAL"
    return "NUMERIC"


_STORED = {
    "INTEGER": (int,),
    "TEXT": (str,),
    "REAL": (int, float),
    "NUMERIC": (int, float, str),
    "BLOB": (int, float, str, bytes),
}


@dataclass(frozen=True)
class Column:
    name: str
    affinity: str
    not_null: bool
    alias: bool  # the rowid itself (INTEGER PRIMARY KEY): the record holds NULL


@dataclass(frozen=True)
class Shape:
    """What a record of one table looks like."""

    table: str
    columns: tuple[Column, ...]

    def fits(self, values: tuple[object, ...]) -> bool:
        if len(values) != len(self.columns):
            return False
        for value, column in zip(values, self.columns, strict=True):
            if column.alias:
                if value is not None:
                    return False
            elif value is None:
                if column.not_null:
                    return False
            elif not isinstance(value, _STORED[column.affinity]):
                return False
        return True

    def holds(self, row: tuple[object, ...]) -> bool:
        """``(rowid, *columns)`` as SQLite reads it (the alias filled in) fits: what a read
        through a damaged tree that strayed into another table's pages fails."""
        values = []
        for value, column in zip(row[1:], self.columns, strict=False):
            if column.alias and value != row[0]:
                return False
            values.append(None if column.alias else value)
        return self.fits(tuple(values))

    def row(self, rowid: int, values: tuple[object, ...]) -> tuple[object, ...]:
        """``(rowid, *columns)``, the rowid alias filled in, as the salvage file keeps rows."""
        for index, column in enumerate(self.columns):
            if column.alias:
                return (rowid, *values[:index], rowid, *values[index + 1 :])
        return (rowid, *values)


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def shape_of(connection: sqlite3.Connection, table: str) -> Shape:
    """The shape of one rowid table, from its ``table_info`` (the rowid alias: the one primary
    key column declared exactly ``INTEGER``)."""
    info = connection.execute(f"PRAGMA main.table_info({quote(table)})").fetchall()
    keys = [row for row in info if row[5]]
    alias = keys[0][1] if len(keys) == 1 and str(keys[0][2]).upper() == "INTEGER" else None
    return Shape(
        table,
        tuple(
            Column(str(r[1]), affinity(str(r[2])), bool(r[3]) or bool(r[5]), r[1] == alias)
            for r in info
        ),
    )


def shapes_of(connection: sqlite3.Connection) -> dict[str, Shape]:
    """The shape of every rowid table with pages of its own (virtual and WITHOUT ROWID tables
    have none that a table-leaf scan meets), ``sqlite_schema`` included."""
    return {
        name: shape_of(connection, name)
        for _, name, kind, _, without_rowid, _ in connection.execute("PRAGMA main.table_list")
        if kind in ("table", "shadow") and not without_rowid
    }
