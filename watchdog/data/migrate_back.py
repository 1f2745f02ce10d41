"""PostgreSQL → SQLite, for a downgrade: every row of the bot's tables, read in one
``REPEATABLE READ`` read-only transaction (one consistent picture however many instances write
meanwhile), into a new file made from ``conf/schema.sql`` (its FTS5 indexes filled by the
schema's own triggers as the rows go in), verified against that same picture, then proven the
way any file that is to become the live database is: the bot's schema and nothing more
(``recovery.schema_problem``), ``integrity_check``, the FTS5 indexes' own check.

Nothing is resumed: the file is written under a temporary name and renamed only once proven, so
a kill leaves no file that could be mistaken for a finished one, and a re-run starts again.
The proven file is also taken into the backup catalogue (tier ``manual``), so that
``python -m watchdog restore ID`` installs it the way every restore does.
"""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

from conf.database_url import DatabaseURL
from conf.journal_lines import encode
from conf.layout import DataLayout
from conf.schema import SEARCH_INDEXES, TABLES, schema_sql
from watchdog.data import erasures_pg
from watchdog.data import migrate_pg as pg
from watchdog.data import migrate_sqlite as lite
from watchdog.data.catalogue import Catalogue
from watchdog.data.database import connect
from watchdog.data.erasure_copies import gather
from watchdog.data.fs import fsync_dir, fsync_file
from watchdog.data.maker import make_snapshot
from watchdog.data.migrate import SHOWN_DIFFERENCES, Say
from watchdog.data.migrate_pg import MigrateError
from watchdog.data.recovery import schema_problem
from watchdog.data.salvage import open_proven
from watchdog.data.snapshot import SnapshotError, SnapshotRequest, integrity_problem
from watchdog.rules.migrate import BATCH_ROWS


@dataclass(frozen=True)
class Downgraded:
    path: Path
    rows: int
    backup_id: str


def migrate_back(
    url: DatabaseURL,
    path: Path,
    layout: DataLayout,
    say: Say,
    app_version: str,
    batch_rows: int = BATCH_ROWS,
) -> Downgraded:
    """The PostgreSQL database at ``url`` as a new, proven SQLite file at ``path``, also in the
    catalogue. Raises MigrateError."""
    if path.exists():
        raise MigrateError(f"{path} already exists: name a new file")
    if not path.parent.is_dir():
        raise MigrateError(f"the folder {path.parent} does not exist")
    temporary = path.with_name(f"{lite.TMP_PREFIX}{path.name}")
    temporary.unlink(missing_ok=True)
    conn = pg.connect(url)
    try:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        with conn.transaction():
            rows = _fill(conn, temporary, say, batch_rows)
            say("verifying: row counts, key sums, sampled rows column by column")
            found = lite.differences(temporary, conn, seed=int(time.time()))
        if found:
            shown = "; ".join(found[:SHOWN_DIFFERENCES])
            raise MigrateError(f"verification failed: {shown}; nothing was kept")
        say("proving the file: the bot's schema, integrity_check, the search indexes")
        _prove(temporary)
        _keep_erasures(layout, temporary)
        os.replace(temporary, path)
        fsync_dir(path.parent)
    except psycopg.Error as error:
        raise pg.failure(f"reading {url.redacted}", error, url) from None
    finally:
        conn.close()
        temporary.unlink(missing_ok=True)
    say("taking the file into the backup catalogue")
    return Downgraded(path, rows, _catalogue(layout, path, app_version))


def _keep_erasures(layout: DataLayout, candidate: Path) -> None:
    """The server's erasure record (its ``erasures`` table, now in the file) into the disk's
    copies of the record (``conf/erasures.py``): every later restore on SQLite, of an older
    backup from before the move up included, erases those users again."""
    source = connect(candidate, "ro")
    try:
        rows = source.execute("SELECT user_id, update_id, erased_at FROM erasures").fetchall()
    finally:
        source.close()
    entries, problems = erasures_pg.entries_of(rows, candidate.name)
    _, more = gather(layout, [encode(entry) for entry in entries])
    if problems or more:
        raise MigrateError(f"the erasure record: {'; '.join(problems + more)}; nothing was kept")


def _fill(conn: psycopg.Connection, temporary: Path, say: Say, batch_rows: int) -> int:
    created = connect(temporary, "rwc")
    try:
        created.executescript(schema_sql())
    finally:
        created.close()
    problem = schema_problem(temporary)
    if problem:
        raise MigrateError(f"the new file is not the bot's schema: {problem}")
    # Made here from conf/schema.sql a moment ago and proven: the one case where its FTS5
    # triggers may run (they need a trusted schema).
    target = open_proven(temporary)
    total = 0
    try:
        target.execute("PRAGMA journal_mode=OFF")  # a temporary file, fsynced once when full
        target.execute("PRAGMA synchronous=OFF")
        shapes = lite.shapes(target)
        for shape in shapes:
            names = pg.copied_columns(conn, shape.name, shape.columns)
            marks = ", ".join("?" * len(names))
            columns = ", ".join(f'"{c}"' for c in names)
            insert = f'INSERT INTO "{shape.name}" ({columns}) VALUES ({marks})'
            target.execute("BEGIN")
            for batch in pg.stream_rows(conn, shape.name, names, shape.key, batch_rows):
                target.executemany(insert, batch)
                total += len(batch)
                say(f"copying {shape.name}: {total:,} rows")
            target.execute("COMMIT")
        target.execute("PRAGMA journal_mode=DELETE")
    except sqlite3.Error as error:
        raise MigrateError(f"writing {temporary.name}: {error}") from None
    finally:
        target.close()
    fsync_file(temporary)
    return total


def _prove(candidate: Path) -> None:
    problem = schema_problem(candidate)
    if problem:
        raise MigrateError(f"the new file failed the schema proof: {problem}")
    problem = integrity_problem(candidate)
    if problem:
        raise MigrateError(f"the new file failed integrity_check: {problem}")
    checker = open_proven(candidate)
    try:
        for index in SEARCH_INDEXES:
            checker.execute(f"INSERT INTO {index}({index}) VALUES ('integrity-check')")
    except sqlite3.Error as error:
        raise MigrateError(f"the new file's search index failed its check: {error}") from None
    finally:
        checker.close()
    if set(TABLES) - {row[0] for row in _names(candidate)}:
        raise MigrateError("the new file lacks some of the bot's tables")


def _names(path: Path) -> list[tuple[str]]:
    connection = lite.open_frozen(path)
    try:
        return connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    finally:
        connection.close()


def _catalogue(layout: DataLayout, path: Path, app_version: str) -> str:
    catalogue = Catalogue(layout)
    request = SnapshotRequest("manual", "downgrade from PostgreSQL", time.time(), app_version)
    try:
        with catalogue.locked():
            manifest, data = make_snapshot(path, catalogue, request)
            catalogue.commit(manifest, data)
    except SnapshotError as error:
        raise MigrateError(
            f"{path} is proven, but taking it into the catalogue failed: {error}"
        ) from None
    return manifest.id
