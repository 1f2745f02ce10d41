"""Erasures made again on PostgreSQL, after ``restore --to`` put a dump into an empty database.

On a server the erasure record is the ``erasures`` table, written in the erasure's own
transaction (``bot/storage/account.py``): no disk is needed, so every instance records alike.
A dump holds the table as it was when the dump was taken, so a restored older dump lacks the
erasures made after it. Before the restore is done, the union of every copy of the record
within reach is therefore written into the restored database and made again on its rows:

- the restored dump's own table;
- the table of every other dump in the local catalogue, and of the newest dump on the offsite
  branch when the restore reads from it (each proven by its sha256 first); the list only grows,
  so the newest dump holds every erasure older than itself;
- the copies on the disk (``conf/erasures.py``): ``backups/erasures.jsonl``, which the backup
  leader refreshes from the table at every dump, and the journal's record from SQLite days;
- the live database (``DATABASE_URL``) when it is another database and still answers: it holds
  every erasure, including those made since the newest dump.

Every copy is healed to hold the union (the disk's files here; the restored database's table,
which later dumps carry on). Rows are read as untrusted: a row that is not an erasure is left
out and said. What is deleted is what :mod:`watchdog.data.erasures` deletes on SQLite: the
user's rows from before their latest erasure, nothing they wrote after it.
"""

from __future__ import annotations

import contextlib
import logging
import subprocess
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from conf.erasures import merge_lines
from conf.journal_lines import ERASURE, ERASURES_FILE, JournalEntry, encode
from conf.layout import DataLayout
from conf.schema import pg_statements
from watchdog.data import server as pg
from watchdog.data.erasure_copies import gather
from watchdog.data.erasures import (
    USER_KEYED_STATE,
    ErasureReport,
    cutoffs,
    ids_in,
    later,
)

if TYPE_CHECKING:  # imported where a server is used: never on SQLite
    import psycopg

log = logging.getLogger(__name__)

TABLE = "erasures"
_TIME = "^[0-9]{4}-[0-9]{2}-[0-9]{2}T"


def _after(column: str) -> str:
    """SQL: ``column`` is a readable time later than the erasure (``%(at)s``)."""
    return f"({column} ~ '{_TIME}' AND {column} COLLATE \"C\" > %(at)s)"


ERASE: tuple[tuple[str, str], ...] = (
    (
        "messages",
        "DELETE FROM messages WHERE (user_id = %(uid)s OR chat_id = %(uid)s) AND NOT ("
        f"{_after('sent_at')} AND update_id IS NOT NULL AND update_id > %(update_id)s)",
    ),
    ("notes", f"DELETE FROM notes WHERE user_id = %(uid)s AND NOT {_after('created_at')}"),
    ("users", f"DELETE FROM users WHERE id = %(uid)s AND NOT {_after('first_seen')}"),
    ("chats", f"DELETE FROM chats WHERE id = %(uid)s AND NOT {_after('first_seen')}"),
    ("outbox", "DELETE FROM outbox WHERE chat_id = %(uid)s"),
)
"""Per table, the statement that deletes an erased user's rows from before the erasure (as on
SQLite; unsent messages to the private chat go whatever their time)."""


def entry_of(user_id: object, update_id: object, erased_at: object) -> JournalEntry:
    """One row of an ``erasures`` table as an erasure; ValueError when it is not one."""
    try:
        uid, update = int(str(user_id)), int(str(update_id))
        moment = datetime.fromisoformat(str(erased_at))
    except (TypeError, ValueError):
        raise ValueError("a row of the erasures table is not an erasure") from None
    if moment.tzinfo is None or update < 0:
        raise ValueError("a row of the erasures table is not an erasure")
    return JournalEntry(ERASURE, update, moment.timestamp(), uid)


def entries_of(
    rows: Iterable[Sequence[object]], where: str
) -> tuple[list[JournalEntry], list[str]]:
    entries: list[JournalEntry] = []
    bad = 0
    for row in rows:
        try:
            if len(row) != 3:
                raise ValueError("not three columns")
            entries.append(entry_of(*row))
        except ValueError:
            bad += 1
    return entries, ([f"{where}: {bad} rows of its erasures table are not erasures"] if bad else [])


def read_table(connection: psycopg.Connection, where: str) -> tuple[list[JournalEntry], list[str]]:
    """The erasures of the database ``connection`` is on (none when it has no such table)."""
    row = connection.execute("SELECT to_regclass('erasures')").fetchone()
    if row is None or row[0] is None:
        return [], []
    rows = connection.execute("SELECT user_id, update_id, erased_at FROM erasures").fetchall()
    return entries_of(rows, where)


def table_rows(connection: psycopg.Connection) -> int:
    """How many rows the erasures table holds (0 without the table): it only grows, so a count
    above the newest dump's says an erasure is not in any dump yet."""
    row = connection.execute("SELECT to_regclass('erasures')").fetchone()
    if row is None or row[0] is None:
        return 0
    counted = connection.execute("SELECT count(*) FROM erasures").fetchone()
    return int(counted[0]) if counted else 0


def server_table_rows(server: pg.Server) -> int:
    with pg.connect(server) as connection:
        return table_rows(connection)


def read_dump(dump: Path, tool: Path) -> tuple[list[JournalEntry], list[str]]:
    """The erasures table as a dump holds it (its COPY data, from ``pg_restore``: no server)."""
    done = subprocess.run(
        [str(tool), "--data-only", f"--table={TABLE}", "--file=-", str(dump)],
        capture_output=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        return [], [f"{dump.name}: pg_restore cannot read its erasures"]
    rows: list[list[str]] = []
    inside = False
    for line in done.stdout.decode("utf-8", "replace").splitlines():
        if not inside:
            inside = line.startswith("COPY ") and f".{TABLE} (" in line
            continue
        if line == "\\.":
            inside = False
            continue
        rows.append(line.split("\t"))
    return entries_of(rows, dump.name)


def record_in(layout: DataLayout, entries: Sequence[JournalEntry]) -> list[str]:
    """Keep ``entries`` in the copy beside the backups (the backup leader, at every dump)."""
    if not entries:
        return []
    try:
        merge_lines(layout.backups / ERASURES_FILE, [encode(entry) for entry in entries])
    except OSError as error:
        return [f"cannot write {layout.backups / ERASURES_FILE}: {error.strerror or error}"]
    return []


def _table_statement() -> str:
    return next(s for s in pg_statements() if f"TABLE IF NOT EXISTS {TABLE} " in s)


def _time_text(at: float) -> str:
    """As the bot writes times (``bot.storage.values.timestamp``)."""
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="microseconds")


def insert_entries(connection: psycopg.Connection, entries: Sequence[JournalEntry]) -> None:
    """``entries`` into the erasures table (created if missing), each once."""
    connection.execute(_table_statement())
    with connection.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO erasures (user_id, update_id, erased_at) VALUES (%s, %s, %s) "
            "ON CONFLICT (user_id, update_id) DO NOTHING",
            [(e.user_id, e.update_id, _time_text(e.at)) for e in entries if e.user_id is not None],
        )


def erase_on_server(
    connection: psycopg.Connection, entries: Sequence[JournalEntry], report: ErasureReport
) -> None:
    """In one transaction on ``connection``: ``entries`` into the erasures table (created if
    the dump had none) and every erased user's rows from before their erasure deleted."""
    limits = cutoffs(entries)
    with connection.transaction():
        insert_entries(connection, entries)
        tables = {name for schema, name in pg.user_tables(connection) if schema == "public"}
        touched: set[int] = set()
        for cutoff in limits:
            params = {"uid": cutoff.user_id, "update_id": cutoff.update_id, "at": cutoff.at_text}
            for table, statement in ERASE:
                if table in tables:
                    deleted = max(connection.execute(statement, params).rowcount, 0)
                    if deleted:
                        report.rows[table] = report.rows.get(table, 0) + deleted
                        touched.add(cutoff.user_id)
        if "persistence" in tables and limits:
            by_user = {cutoff.user_id: cutoff.at_text for cutoff in limits}
            rows = connection.execute(
                'SELECT kind, name, "key", updated_at FROM persistence WHERE kind = ANY(%s)',
                (list(USER_KEYED_STATE),),
            ).fetchall()
            doomed = []
            for kind, name, key, updated in rows:
                owners = {u for u in ids_in(key) if u in by_user and not later(updated, by_user[u])}
                if owners:
                    doomed.append((kind, name, key))
                    touched |= owners
            with connection.cursor() as cursor:
                cursor.executemany(
                    'DELETE FROM persistence WHERE kind = %s AND name = %s AND "key" = %s', doomed
                )
            if doomed:
                report.rows["persistence"] = report.rows.get("persistence", 0) + len(doomed)
    report.users += len(touched)


def reerase(
    target: pg.Server,
    layout: DataLayout,
    dumps: Sequence[Path],
    tool: Path,
    live: pg.Server | None,
) -> ErasureReport:
    """After a restore into ``target``: the union of every copy of the record (see the module
    docstring) written into it and made again. Never raises: problems are in the report."""
    import psycopg

    entries: list[JournalEntry] = []
    problems: list[str] = []
    notes: list[str] = []
    for dump in dumps:
        found, bad = read_dump(dump, tool)
        entries += found
        problems += bad
    if live is not None:
        try:
            with pg.connect(live) as connection:
                found, bad = read_table(connection, live.where)
            entries += found
            problems += bad
        except (pg.ServerError, psycopg.Error) as error:
            notes.append(f"the live database is not read ({live.scrub(str(error))[:200]})")
    try:
        with pg.connect(target, autocommit=False) as connection:
            found, bad = read_table(connection, target.where)
            connection.rollback()
        entries += found
        problems += bad
        on_disk, disk_problems = gather(layout, [encode(entry) for entry in entries])
        problems += disk_problems
        report = ErasureReport(erasures=len(cutoffs(on_disk)), problems=problems)
        if on_disk:
            with pg.connect(target, autocommit=False) as connection:
                erase_on_server(connection, on_disk, report)
    except (pg.ServerError, psycopg.Error) as error:
        report = ErasureReport(erasures=len(cutoffs(entries)), problems=problems)
        report.problems.append(
            f"erasing again in {target.where} failed: {target.scrub(str(error))}"
        )
    for note in notes:
        log.info("erasures: %s", note)
    for problem in report.problems:
        log.error("erasures: %s", problem)
    return report


def dumps_to_read(paths: Iterable[Path]) -> list[Path]:
    """The dump files that exist, each once."""
    seen: list[Path] = []
    for path in paths:
        with contextlib.suppress(OSError):
            if path.is_file() and path not in seen:
                seen.append(path)
    return seen
