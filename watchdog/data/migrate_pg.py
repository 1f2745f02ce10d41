"""The PostgreSQL side of a migration (psycopg 3): connecting with errors that never show the
password, what the target holds, the schema (``conf/schema_pg.sql``) and the progress record
created together, batches copied with ``COPY … FROM STDIN``, identities moved past the copied
ids, and the reads the verification makes."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import psycopg
from psycopg import sql

from conf.database_url import DatabaseURL
from conf.schema import PG_SEARCH_COLUMN, pg_statements
from watchdog.rules.migrate import (
    RECORD_TABLE,
    Record,
    RecordError,
    parse_record,
    record_document,
    scrub,
)

CONNECT_TIMEOUT = 15


class MigrateError(Exception):
    """The migration stopped; one line for the operator (never a password). What was committed
    stays, and a re-run continues from it."""


def connect(url: DatabaseURL) -> psycopg.Connection:
    """A connection (autocommit: each unit of work is a ``transaction()`` block) to the
    database of ``url``, or MigrateError naming what went wrong."""
    if not urlsplit(url.redacted).path.strip("/"):
        raise MigrateError(f"the URL names no database (…/DBNAME): {url.redacted}")
    try:
        return psycopg.connect(
            url.libpq_url,
            connect_timeout=CONNECT_TIMEOUT,
            application_name="erixcast-migrate",
            autocommit=True,
        )
    except psycopg.Error as error:
        raise failure(f"cannot connect to {url.redacted}", error, url) from None


def failure(what: str, error: BaseException, url: DatabaseURL) -> MigrateError:
    return MigrateError(f"{what}: {scrub(str(error), url.secrets)}")


def relations(conn: psycopg.Connection) -> set[str]:
    """Tables, views and sequences of the database's own schemas (not the system's)."""
    rows = conn.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') "
        "AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
        "AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'"
    ).fetchall()
    return {str(row[0]) for row in rows}


FINISHED_ON = "users"
"""The table whose comment keeps a finished migration's record once its table is dropped."""
FINISHED_MARK = "erixcast: a finished, verified migration: "


def read_record(conn: psycopg.Connection, tables: set[str]) -> Record | None:
    """The migration's record: its table while the migration is unfinished, then the comment
    :func:`finish_record` left (None: no migration of ours)."""
    if RECORD_TABLE not in tables:
        if FINISHED_ON not in tables:
            return None
        row = conn.execute(
            "SELECT obj_description(to_regclass(%s), 'pg_class')", (FINISHED_ON,)
        ).fetchone()
        comment = str(row[0]) if row and row[0] else ""
        if not comment.startswith(FINISHED_MARK):
            return None
        try:
            return parse_record(json.loads(comment.removeprefix(FINISHED_MARK)))
        except ValueError:
            raise RecordError(f"the comment on {FINISHED_ON} is not a migration record") from None
    row = conn.execute(
        sql.SQL("SELECT document FROM {} WHERE id = 1").format(sql.Identifier(RECORD_TABLE))
    ).fetchone()
    if row is None:
        raise RecordError(f"{RECORD_TABLE} is there but empty")
    try:
        return parse_record(json.loads(row[0]))
    except ValueError:
        raise RecordError(f"{RECORD_TABLE} holds a record that is not JSON") from None


def create_schema(conn: psycopg.Connection, record: Record) -> None:
    """The bot's schema and the progress record, in the caller's transaction: both or neither."""
    for statement in pg_statements():
        conn.execute(statement)  # type: ignore[arg-type]  # our own DDL, no parameters
    conn.execute(
        sql.SQL(
            "CREATE TABLE {} (id INTEGER PRIMARY KEY CHECK (id = 1), document TEXT NOT NULL)"
        ).format(sql.Identifier(RECORD_TABLE))
    )
    conn.execute(
        sql.SQL("INSERT INTO {} (id, document) VALUES (1, %s)").format(
            sql.Identifier(RECORD_TABLE)
        ),
        (json.dumps(record_document(record)),),
    )


def write_record(conn: psycopg.Connection, record: Record) -> None:
    conn.execute(
        sql.SQL("UPDATE {} SET document = %s WHERE id = 1").format(sql.Identifier(RECORD_TABLE)),
        (json.dumps(record_document(record)),),
    )


def finish_record(conn: psycopg.Connection, record: Record) -> None:
    """The migration is verified: its bookkeeping table goes (the database holds the bot's
    tables only), and the record stays as a comment on ``users``, so that a re-run says the
    migration is finished. In the caller's transaction: a kill before its commit leaves the
    table, and a re-run verifies again."""
    conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(RECORD_TABLE)))
    conn.execute(
        sql.SQL("COMMENT ON TABLE {} IS {}").format(
            sql.Identifier(FINISHED_ON),
            sql.Literal(FINISHED_MARK + json.dumps(record_document(record))),
        )
    )


@dataclass(frozen=True)
class Column:
    name: str
    generated: bool
    """Computed by the server (the search column): never copied, never compared."""


def columns(conn: psycopg.Connection, table: str) -> list[Column]:
    rows = conn.execute(
        "SELECT column_name, is_generated FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND table_name = %s ORDER BY ordinal_position",
        (table,),
    ).fetchall()
    return [Column(str(name), generated == "ALWAYS") for name, generated in rows]


def copied_columns(conn: psycopg.Connection, table: str, source: Sequence[str]) -> list[str]:
    """The columns both sides have: every column of the source, or MigrateError."""
    found = {c.name for c in columns(conn, table) if not c.generated}
    if not found:
        raise MigrateError(f"the PostgreSQL database has no table {table}")
    missing = [name for name in source if name not in found]
    if missing:
        raise MigrateError(f"the PostgreSQL table {table} lacks the columns {', '.join(missing)}")
    return list(source)


def copy_rows(
    conn: psycopg.Connection, table: str, names: Sequence[str], rows: Iterable[Sequence[object]]
) -> None:
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, names))
    )
    with conn.cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)


def reset_identities(conn: psycopg.Connection, tables: Sequence[str]) -> list[str]:
    """Every identity (or serial) sequence moved past the largest id copied, so the bot's next
    insert does not collide with a copied row. Returns ``table.column`` of each one moved."""
    moved = []
    for table in tables:
        for column in columns(conn, table):
            row = conn.execute(
                "SELECT pg_get_serial_sequence(%s, %s)", (table, column.name)
            ).fetchone()
            if row is None or row[0] is None:
                continue
            conn.execute(
                sql.SQL(
                    "SELECT setval(%s, coalesce(max({c}), 1), max({c}) IS NOT NULL) FROM {t}"
                ).format(c=sql.Identifier(column.name), t=sql.Identifier(table)),
                (row[0],),
            )
            moved.append(f"{table}.{column.name}")
    return moved


def count(conn: psycopg.Connection, table: str) -> int:
    row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()
    return int(row[0]) if row else 0


def key_sum(conn: psycopg.Connection, table: str, key: str) -> int:
    row = conn.execute(
        sql.SQL("SELECT coalesce(sum({}), 0) FROM {}").format(
            sql.Identifier(key), sql.Identifier(table)
        )
    ).fetchone()
    return int(row[0]) if row else 0


def unsearchable(conn: psycopg.Connection, table: str) -> int | None:
    """Rows whose generated search column is empty (None: the table has no search column)."""
    if PG_SEARCH_COLUMN not in {c.name for c in columns(conn, table)}:
        return None
    row = conn.execute(
        sql.SQL("SELECT count(*) FROM {} WHERE {} IS NULL").format(
            sql.Identifier(table), sql.Identifier(PG_SEARCH_COLUMN)
        )
    ).fetchone()
    return int(row[0]) if row else 0


def rows_by_key(
    conn: psycopg.Connection,
    table: str,
    names: Sequence[str],
    key: Sequence[str],
    keys: Sequence[Sequence[object]],
) -> dict[tuple[object, ...], tuple[object, ...]]:
    """The rows of ``table`` whose primary key is one of ``keys``, by key."""
    if not keys:
        return {}
    positions = [names.index(k) for k in key]
    one = sql.SQL("({})").format(sql.SQL(", ").join(sql.Placeholder() * len(key)))
    statement = sql.SQL("SELECT {} FROM {} WHERE ({}) IN (VALUES {})").format(
        sql.SQL(", ").join(map(sql.Identifier, names)),
        sql.Identifier(table),
        sql.SQL(", ").join(map(sql.Identifier, key)),
        sql.SQL(", ").join([one] * len(keys)),
    )
    flat = [value for k in keys for value in k]
    found = conn.execute(statement, flat).fetchall()
    return {tuple(row[p] for p in positions): tuple(row) for row in found}


def stream_rows(
    conn: psycopg.Connection, table: str, names: Sequence[str], key: Sequence[str], size: int
) -> Iterable[list[tuple[object, ...]]]:
    """Every row of ``table`` in key order, ``size`` at a time, through a server-side cursor
    (memory stays bounded), inside the caller's transaction."""
    statement = sql.SQL("SELECT {} FROM {} ORDER BY {}").format(
        sql.SQL(", ").join(map(sql.Identifier, names)),
        sql.Identifier(table),
        sql.SQL(", ").join(map(sql.Identifier, key)),
    )
    with conn.cursor(name=f"migrate_{table}") as cursor:
        cursor.itersize = size
        cursor.execute(statement)
        while batch := cursor.fetchmany(size):
            yield batch
