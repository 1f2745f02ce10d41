"""conf/schema_pg.sql and conf/schema.sql describe the same database: same tables, columns,
primary and unique keys, roles. Each side is read from a real database made from its file."""

from __future__ import annotations

import re
import sqlite3
from contextlib import closing

import psycopg
import pytest

from conf import schema
from tests.pg import PostgresServer

Shape = dict[str, tuple[list[str], list[str], set[tuple[str, ...]]]]
"""table → (columns in order, primary key columns, unique keys)."""


def sqlite_shape() -> Shape:
    shape: Shape = {}
    with closing(sqlite3.connect(":memory:")) as conn:
        conn.executescript(schema.schema_sql())
        for table in schema.TABLES:
            info = conn.execute(f"PRAGMA table_info({table})").fetchall()
            columns = [row[1] for row in info]
            primary = [row[1] for row in sorted(info, key=lambda row: row[5]) if row[5]]
            unique = set()
            for index in conn.execute(f"PRAGMA index_list({table})").fetchall():
                if index[2] and index[3] == "u":
                    parts = conn.execute(f"PRAGMA index_info({index[1]})").fetchall()
                    unique.add(tuple(part[2] for part in parts))
            shape[table] = (columns, primary, unique)
    return shape


def pg_shape(conn: psycopg.Connection) -> Shape:
    shape: Shape = {}
    for table in schema.PG_TABLES:
        columns = [
            row[0]
            for row in conn.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = current_schema() AND table_name = %s "
                "ORDER BY ordinal_position",
                (table,),
            )
        ]
        keys: dict[str, set[tuple[str, ...]]] = {"p": set(), "u": set()}
        for kind, definition in conn.execute(
            "SELECT contype, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = %s::regclass AND contype IN ('p', 'u')",
            (table,),
        ):
            inside = re.search(r"\((.*)\)", definition)
            assert inside is not None
            keys[kind].add(tuple(part.strip().strip('"') for part in inside[1].split(",")))
        (primary,) = keys["p"]
        shape[table] = (columns, list(primary), keys["u"])
    return shape


@pytest.fixture
def pg(postgres: PostgresServer):
    with psycopg.connect(postgres.url(postgres.create_database()), autocommit=True) as conn:
        for statement in schema.pg_statements():
            conn.execute(statement)
        yield conn


def test_the_same_tables_in_the_same_order_with_the_same_roles() -> None:
    assert schema.PG_TABLES == schema.TABLES
    sqlite_roles = schema._table_roles(schema.schema_sql())
    pg_roles = schema._table_roles(schema.pg_schema_sql(), schema.PG_SCHEMA_FILE)
    assert pg_roles == {name: sqlite_roles[name] for name in schema.TABLES}


def test_the_same_columns_and_keys(pg: psycopg.Connection) -> None:
    on_pg = pg_shape(pg)
    for table, (columns, primary, unique) in sqlite_shape().items():
        pg_columns, pg_primary, pg_unique = on_pg[table]
        extra = [schema.PG_SEARCH_COLUMN] if table in ("messages", "notes") else []
        assert pg_columns == columns + extra, table
        assert pg_primary == primary, table
        assert pg_unique == unique, table


def test_running_the_schema_again_changes_nothing(pg: psycopg.Connection) -> None:
    def catalogue() -> list[tuple]:
        return pg.execute(
            "SELECT c.relname, c.relkind, a.attname, format_type(a.atttypid, a.atttypmod) "
            "FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid "
            "WHERE c.relnamespace = current_schema()::regnamespace AND a.attnum > 0 "
            "ORDER BY 1, 3"
        ).fetchall()

    before = catalogue()
    assert before
    for statement in schema.pg_statements():
        pg.execute(statement)
    assert catalogue() == before


def test_the_search_column_folds_case_and_accents_and_follows_edits(
    pg: psycopg.Connection,
) -> None:
    pg.execute(
        "INSERT INTO messages (chat_id, message_id, kind, text, sent_at) "
        "VALUES (1, 1, 'text', 'Crème BRÛLÉE au Café Привет', 'x')"
    )
    (vector,) = pg.execute("SELECT search_vector::text FROM messages").fetchone()
    assert vector == "'au':3 'brulee':2 'cafe':4 'creme':1 'привет':5"
    pg.execute("UPDATE messages SET text = 'Ça va' WHERE id = 1")
    (vector,) = pg.execute("SELECT search_vector::text FROM messages").fetchone()
    assert vector == "'ca':1 'va':2"


def test_statements_are_split_where_a_semicolon_ends_them() -> None:
    statements = schema.pg_statements()
    assert all(not statement.endswith(";") for statement in statements)
    assert all(not statement.startswith("--") for statement in statements)
    assert sum(statement.startswith("CREATE TABLE") for statement in statements) == 9
