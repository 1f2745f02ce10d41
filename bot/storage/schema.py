"""The bot's tables, created from ``conf/schema.sql`` on SQLite and ``conf/schema_pg.sql`` on
PostgreSQL (the one definition of the schema on each, kept in step by tests)."""

from __future__ import annotations

import functools

import sqlalchemy as sa

from conf import schema

SCHEMA_LOCK = 0x45726978_63617374  # "Erixcast"
"""The advisory lock PostgreSQL's DDL runs under: instances that start together take turns (two
``CREATE … IF NOT EXISTS`` at once can both decide to create, and one fails)."""


def create_sqlite_schema(conn: sa.Connection) -> None:
    """Run the DDL: every statement is ``IF NOT EXISTS``, so a database that has it all is left
    as it is. A search index new to an older database is built from the rows it already holds."""
    existing = {
        row[0]
        for row in conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'table'")
    }
    for statement in schema.statements():
        conn.exec_driver_sql(statement)
    for index in schema.SEARCH_INDEXES:
        if index not in existing:
            conn.exec_driver_sql(f"INSERT INTO {index}({index}) VALUES ('rebuild')")


def create_postgres_schema(conn: sa.Connection) -> None:
    """Run conf/schema_pg.sql, idempotent, inside the caller's transaction and its lock. The
    search columns are generated: nothing to rebuild."""
    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK})
    for statement in schema.pg_statements():
        conn.exec_driver_sql(statement)


@functools.cache
def reflected_metadata() -> sa.MetaData:
    """``sa.Table`` objects of the bot's tables, reflected from the DDL in a scratch in-memory
    database: for code that wants SQLAlchemy tables, without a second definition."""
    engine = sa.create_engine("sqlite://")
    try:
        with engine.begin() as conn:
            for statement in schema.statements():
                conn.exec_driver_sql(statement)
            metadata = sa.MetaData()
            metadata.reflect(conn, only=list(schema.TABLES))
    finally:
        engine.dispose()
    return metadata
