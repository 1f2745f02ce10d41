"""The SQLite side of a migration, and the verification both directions share.

The source of a migration to PostgreSQL is never the live file: it is a snapshot taken with the
online backup API in one step (``snapshot.copy_database``: the whole database as of one moment,
however the bot writes meanwhile), proven (the bot's schema, ``integrity_check``), hashed, and
kept in ``DATA_DIR/migrate/`` until the migration is verified, so that a re-run after a kill
reads the very same rows, proven the same by its sha256.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import psycopg

from conf.layout import DataLayout
from conf.schema import TABLES
from watchdog.data import migrate_pg as pg
from watchdog.data.database import connect
from watchdog.data.fs import free_bytes, fsync_dir
from watchdog.data.recovery import schema_problem
from watchdog.data.snapshot import SnapshotError, copy_database, integrity_problem
from watchdog.rules.migrate import count_differences, row_differences, sample_points

FOLDER = "migrate"
TMP_PREFIX = ".tmp-"
MARGIN_BYTES = 64 << 20


def folder(layout: DataLayout) -> Path:
    return layout.root / FOLDER


@dataclass(frozen=True)
class Shape:
    """One table of a SQLite file: its columns in order and its primary key."""

    name: str
    columns: tuple[str, ...]
    key: tuple[str, ...]

    @property
    def integer_key(self) -> str | None:
        """The single integer key column whose sum both sides must agree on."""
        return self.key[0] if len(self.key) == 1 and self.key[0] in ("id", "update_id") else None

    def where(self, row: Sequence[object]) -> str:
        key = ", ".join(f"{k}={row[self.columns.index(k)]!r}" for k in self.key)
        return f"{self.name} {key}"


def shapes(connection: sqlite3.Connection, tables: Sequence[str] = TABLES) -> list[Shape]:
    found = []
    for table in tables:
        info = connection.execute(f'PRAGMA table_info("{table}")').fetchall()
        if not info:
            raise pg.MigrateError(f"the SQLite database has no table {table}")
        names = tuple(str(row[1]) for row in info)
        key = tuple(str(row[1]) for row in sorted((r for r in info if r[5]), key=lambda r: r[5]))
        found.append(Shape(table, names, key))
    return found


def open_frozen(path: Path) -> sqlite3.Connection:
    return connect(path, "ro", immutable=True)


def take_snapshot(layout: DataLayout, now: float) -> tuple[Path, str]:
    """A proven copy of the live database in ``DATA_DIR/migrate/`` and its sha256."""
    if not layout.database.is_file():
        raise pg.MigrateError(f"no database at {layout.database}")
    place = folder(layout)
    place.mkdir(mode=0o700, exist_ok=True)
    for leftover in place.glob(f"{TMP_PREFIX}*"):
        leftover.unlink(missing_ok=True)
    need = layout.database.stat().st_size + MARGIN_BYTES
    free = free_bytes(place)
    if free < need:
        raise pg.MigrateError(
            f"not enough room in {place} for the snapshot: {need >> 20} MB needed, "
            f"{free >> 20} MB free"
        )
    name = f"snapshot-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(now))}-{os.getpid()}.db"
    temporary = place / f"{TMP_PREFIX}{name}"
    try:
        digest = copy_database(layout.database, temporary, lambda: True)
        problem = schema_problem(temporary)
        if problem:
            raise pg.MigrateError(
                f"{layout.database}: {problem} (start the bot of this version once, then migrate)"
            )
        problem = integrity_problem(temporary)
        if problem:
            raise pg.MigrateError(
                f"the snapshot of {layout.database} fails integrity_check: {problem}"
            )
        final = place / name
        os.replace(temporary, final)
        fsync_dir(place)
    except SnapshotError as error:
        raise pg.MigrateError(f"snapshot of {layout.database}: {error}") from None
    finally:
        temporary.unlink(missing_ok=True)
    return final, digest


def table_totals(path: Path) -> list[tuple[str, int, int]]:
    """``(table, rows, smallest rowid - 1)`` for each of the bot's tables in the file."""
    found = []
    connection = open_frozen(path)
    try:
        for table in TABLES:
            rows, low = connection.execute(f'SELECT count(*), min(rowid) FROM "{table}"').fetchone()
            found.append((table, int(rows), int(low) - 1 if low is not None else 0))
    finally:
        connection.close()
    return found


def read_batch(
    connection: sqlite3.Connection, shape: Shape, after: int, limit: int
) -> tuple[list[tuple[object, ...]], int]:
    """Rows after rowid ``after`` in rowid order, at most ``limit``; and the last rowid read."""
    names = ", ".join(f'"{c}"' for c in shape.columns)
    found = connection.execute(
        f'SELECT rowid, {names} FROM "{shape.name}" WHERE rowid > ? ORDER BY rowid LIMIT ?',
        (after, limit),
    ).fetchall()
    if not found:
        return [], after
    return [tuple(row[1:]) for row in found], int(found[-1][0])


def sample(connection: sqlite3.Connection, shape: Shape, seed: int) -> list[tuple[object, ...]]:
    """Rows spread over the table (ends, evenly, at random), each once."""
    low, high = connection.execute(f'SELECT min(rowid), max(rowid) FROM "{shape.name}"').fetchone()
    if low is None:
        return []
    names = ", ".join(f'"{c}"' for c in shape.columns)
    picked: dict[int, tuple[object, ...]] = {}
    for point in sample_points(int(low), int(high), seed=seed):
        row = connection.execute(
            f'SELECT rowid, {names} FROM "{shape.name}" WHERE rowid >= ? ORDER BY rowid LIMIT 1',
            (point,),
        ).fetchone()
        if row is not None:
            picked[int(row[0])] = tuple(row[1:])
    return list(picked.values())


def differences(sqlite_path: Path, conn: psycopg.Connection, seed: int) -> list[str]:
    """What differs between a SQLite file nobody writes and the PostgreSQL database (in the
    caller's transaction): row counts, integer key sums, a sample of rows column by column,
    and, on PostgreSQL, any row whose search column is empty."""
    found: list[str] = []
    connection = open_frozen(sqlite_path)
    try:
        for shape in shapes(connection):
            quoted = f'"{shape.name}"'
            source_count = int(connection.execute(f"SELECT count(*) FROM {quoted}").fetchone()[0])
            found += count_differences(
                {shape.name: source_count}, {shape.name: pg.count(conn, shape.name)}
            )
            if shape.integer_key:
                total = connection.execute(
                    f'SELECT coalesce(sum("{shape.integer_key}"), 0) FROM {quoted}'
                ).fetchone()[0]
                theirs = pg.key_sum(conn, shape.name, shape.integer_key)
                if int(total) != theirs:
                    found.append(f"{shape.name}: the {shape.integer_key} values differ (sums)")
            rows = sample(connection, shape, seed)
            keys = [tuple(row[shape.columns.index(k)] for k in shape.key) for row in rows]
            target = pg.rows_by_key(conn, shape.name, shape.columns, shape.key, keys)
            for key, row in zip(keys, rows, strict=True):
                found += row_differences(shape.where(row), shape.columns, row, target.get(key))
            empty = pg.unsearchable(conn, shape.name)
            if empty:
                found.append(f"{shape.name}: {empty} rows with no search column")
    finally:
        connection.close()
    return found
