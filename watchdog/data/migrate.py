"""SQLite → PostgreSQL: the live database's snapshot copied into an empty PostgreSQL database,
batch by batch, each batch committed together with the progress record that describes it, then
identities moved past the copied ids, then verified (``migrate_sqlite.differences``).

A kill at any point leaves either an empty target, or the schema with a record saying which
rows are in: a re-run reads the same snapshot (its sha256 checked) and goes on after the last
committed batch. The snapshot is removed once the migration is verified.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import psycopg

from conf.database_url import DatabaseURL
from conf.journal_lines import JournalEntry
from conf.layout import DataLayout
from conf.schema import TABLES
from watchdog.data import migrate_pg as pg
from watchdog.data import migrate_sqlite as lite
from watchdog.data.erasure_copies import gather
from watchdog.data.erasures_pg import insert_entries
from watchdog.data.fs import AlreadyRunning, InstanceLock
from watchdog.data.migrate_pg import MigrateError
from watchdog.data.snapshot import sha256_of
from watchdog.rules.migrate import (
    BATCH_ROWS,
    Record,
    RecordError,
    TableProgress,
    advance,
    copy_problem,
    judge_target,
    next_batch,
    switch_over,
)

Say = Callable[[str], None]
SHOWN_DIFFERENCES = 5


@dataclass(frozen=True)
class Outcome:
    lines: list[str]
    finished_before: bool = False


@contextmanager
def stack_stopped(layout: DataLayout) -> Iterator[bool]:
    """True while this process holds the watchdog's lock (no stack can start meanwhile); False
    when a watchdog runs: the bot may be writing while the snapshot is taken."""
    lock = InstanceLock(layout.lock_file)
    try:
        lock.acquire()
    except AlreadyRunning:
        yield False
        return
    try:
        yield True
    finally:
        lock.release()


def migrate_to(
    layout: DataLayout, url: DatabaseURL, say: Say, *, live: bool, batch_rows: int = BATCH_ROWS
) -> Outcome:
    """Copy the live database into the PostgreSQL database at ``url``, or continue the
    migration already begun there. Raises MigrateError."""
    conn = pg.connect(url)
    try:
        try:
            tables = pg.relations(conn)
            record = pg.read_record(conn, tables)
        except RecordError as error:
            raise MigrateError(f"{url.redacted}: {error}") from None
        target = judge_target(tables, record, url.redacted)
        if target.kind == "foreign":
            raise MigrateError(target.line)
        if target.kind == "finished":
            return Outcome([target.line, "nothing to do"], finished_before=True)
        if record is None:
            say("taking a snapshot of the database (online backup, then integrity_check)")
            record, snapshot = _begin(conn, layout, url, live)
        else:
            say(target.line)
            snapshot = _resumed_snapshot(layout, record)
        try:
            record = _copy(conn, snapshot, record, say, batch_rows)
            erasures = _disk_erasures(layout, say)
            record = _verify(conn, snapshot, record, say, url, erasures)
        except psycopg.Error as error:
            raise pg.failure(url.redacted, error, url) from None
        snapshot.unlink(missing_ok=True)
        return Outcome(switch_over(url.redacted, record, live_now=live))
    finally:
        conn.close()


def _begin(
    conn: psycopg.Connection, layout: DataLayout, url: DatabaseURL, live: bool
) -> tuple[Record, Path]:
    now = time.time()
    snapshot, digest = lite.take_snapshot(layout, now)
    try:
        totals = lite.table_totals(snapshot)
        record = Record(
            snapshot=snapshot.name,
            sha256=digest,
            source=str(layout.database),
            taken_at=now,
            live=live,
            tables=tuple(TableProgress(name, rows, 0, after) for name, rows, after in totals),
        )
        with conn.transaction():
            pg.create_schema(conn, record)
    except psycopg.Error as error:
        snapshot.unlink(missing_ok=True)
        raise pg.failure(f"creating the schema in {url.redacted}", error, url) from None
    except BaseException:
        snapshot.unlink(missing_ok=True)
        raise
    return record, snapshot


def _resumed_snapshot(layout: DataLayout, record: Record) -> Path:
    """The snapshot the unfinished migration copies from, proven to be the same bytes."""
    snapshot = lite.folder(layout) / record.snapshot
    again = (
        "the rows copied so far cannot be completed from another snapshot: drop and create the "
        "target database again (DROP DATABASE …; CREATE DATABASE …) and migrate again"
    )
    if [t.name for t in record.tables] != list(TABLES):
        raise MigrateError(
            f"the unfinished migration copies other tables than this version's; {again}"
        )
    if not snapshot.is_file():
        raise MigrateError(f"the snapshot {snapshot} this migration copies from is gone; {again}")
    if sha256_of(snapshot) != record.sha256:
        raise MigrateError(
            f"the snapshot {snapshot} is not the one the migration began with; {again}"
        )
    return snapshot


def _copy(
    conn: psycopg.Connection, snapshot: Path, record: Record, say: Say, batch_rows: int
) -> Record:
    source = lite.open_frozen(snapshot)
    try:
        shapes = {shape.name: shape for shape in lite.shapes(source)}
        names = {t: pg.copied_columns(conn, t, shapes[t].columns) for t in shapes}
        while (batch := next_batch(record, batch_rows)) is not None:
            shape = shapes[batch.table]
            rows, last = lite.read_batch(source, shape, batch.after, batch.limit)
            problem = copy_problem(batch, len(rows))
            if problem:
                raise MigrateError(problem)
            moved = advance(record, batch.table, last, len(rows))
            try:
                with conn.transaction():
                    pg.copy_rows(conn, batch.table, names[batch.table], rows)
                    pg.write_record(conn, moved)
            except psycopg.Error as error:
                raise MigrateError(
                    f"copying {batch.table} (rows after rowid {batch.after}): "
                    f"{' '.join(str(error).split())}"
                ) from None
            record = moved
            say(f"copying {batch.table}: {_share(record)}")
    finally:
        source.close()
    if record.copied_at is None:
        with conn.transaction():
            pg.reset_identities(conn, TABLES)
            record = replace(record, copied_at=time.time())
            pg.write_record(conn, record)
        say("analyzing the copied tables")
        conn.execute("ANALYZE")
    return record


def _share(record: Record) -> str:
    percent = 100 * record.copied / record.rows if record.rows else 100
    return f"{record.copied:,} of {record.rows:,} rows ({percent:.0f} %)"


def _disk_erasures(layout: DataLayout, say: Say) -> list[JournalEntry]:
    """The SQLite side's erasure record (``conf/erasures.py``), to carry into the server's."""
    entries, problems = gather(layout)
    for problem in problems:
        say(f"erasure record: {problem}")
    return entries


def _verify(
    conn: psycopg.Connection,
    snapshot: Path,
    record: Record,
    say: Say,
    url: DatabaseURL,
    erasures: list[JournalEntry],
) -> Record:
    say("verifying: row counts, key sums, sampled rows column by column")
    with conn.transaction():
        found = lite.differences(snapshot, conn, seed=int(record.taken_at))
    if found:
        shown = "; ".join(found[:SHOWN_DIFFERENCES])
        more = (
            f" (and {len(found) - SHOWN_DIFFERENCES} more)"
            if len(found) > SHOWN_DIFFERENCES
            else ""
        )
        raise MigrateError(
            f"verification failed: {shown}{more}. {url.redacted} is not ready: do not switch; "
            "drop and create it again, then migrate again"
        )
    with conn.transaction():
        record = replace(record, verified_at=time.time())
        pg.finish_record(conn, record)
        # Every erasure of the SQLite days joins the server's record: later dumps carry them.
        insert_entries(conn, erasures)
    return record
