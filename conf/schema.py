"""The bot's database schema, as data: ``conf/schema.sql`` and what it says about each table.

Shared by the bot (which creates its tables from it) and the watchdog (which checks candidate
databases against it and learns which tables salvage may merge) without either importing the
other. The roles come from the ``-- @role`` line before each ``CREATE TABLE`` in the file.
"""

from __future__ import annotations

import functools
import re
import sqlite3
from contextlib import closing
from pathlib import Path

SCHEMA_FILE = Path(__file__).with_name("schema.sql")
PG_SCHEMA_FILE = Path(__file__).with_name("schema_pg.sql")
"""The same schema on PostgreSQL: same tables, columns, keys and roles (a test keeps them in
step), plus the search columns below."""
PG_SEARCH_COLUMN = "search_vector"
"""The generated tsvector column that messages and notes have on PostgreSQL only."""

MERGEABLE = "mergeable"
STATE = "state"
SEARCH_INDEX = "search-index"
ROLES = (MERGEABLE, STATE, SEARCH_INDEX)

SchemaRow = tuple[str, str, str, str | None]
"""``(type, name, tbl_name, sql)`` of one row of ``sqlite_master``."""

_CREATE_TABLE = re.compile(r"^CREATE (?:VIRTUAL )?TABLE IF NOT EXISTS (\w+)", re.MULTILINE)
_ROLE_THEN_TABLE = re.compile(
    r"^-- @role (\S+)\n(?:--.*\n)*CREATE (?:VIRTUAL )?TABLE IF NOT EXISTS (\w+)", re.MULTILINE
)


def schema_sql() -> str:
    """The DDL text: ``CREATE … IF NOT EXISTS`` statements, safe to run on any database of the
    bot, new or old."""
    return SCHEMA_FILE.read_text(encoding="utf-8")


def statements() -> tuple[str, ...]:
    """The DDL one statement at a time (without the ``;``), for drivers that run one per call.
    Trigger bodies hold semicolons of their own: SQLite itself says where a statement ends."""
    found: list[str] = []
    pending = ""
    for piece in schema_sql().split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            code = _code_only(pending).removesuffix(";").rstrip()
            if code:
                found.append(code)
            pending = ""
    return tuple(found)


def _code_only(statement: str) -> str:
    """The statement without the comment lines and blank lines before it."""
    lines = statement.strip().splitlines()
    while lines and (not lines[0].strip() or lines[0].lstrip().startswith("--")):
        lines.pop(0)
    return "\n".join(lines)


def _table_roles(sql: str, source: Path = SCHEMA_FILE) -> dict[str, str]:
    roles = {name: role for role, name in _ROLE_THEN_TABLE.findall(sql)}
    for name in _CREATE_TABLE.findall(sql):
        if roles.get(name) not in ROLES:
            raise ValueError(f"{source}: table {name} needs a '-- @role' line, one of {ROLES}")
    return roles


_ROLES_BY_TABLE = _table_roles(schema_sql())

TABLES = tuple(name for name, role in _ROLES_BY_TABLE.items() if role in (MERGEABLE, STATE))
"""The bot's own tables, in the order the file creates them."""
MERGEABLE_TABLES = tuple(name for name, role in _ROLES_BY_TABLE.items() if role == MERGEABLE)
"""The append-only tables salvage may merge by primary key, in merge order."""
SEARCH_INDEXES = tuple(name for name, role in _ROLES_BY_TABLE.items() if role == SEARCH_INDEX)
"""The FTS5 tables (their shadow tables come with them)."""


@functools.cache
def expected_schema() -> tuple[SchemaRow, ...]:
    """The rows of ``sqlite_master`` a database made from the DDL has, in creation order:
    tables with their automatic indexes, indexes, FTS5 tables with their shadow tables,
    triggers."""
    with closing(sqlite3.connect(":memory:")) as conn:
        conn.executescript(schema_sql())
        rows = conn.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY rowid"
        ).fetchall()
    return tuple((row[0], row[1], row[2], row[3]) for row in rows)


def pg_schema_sql() -> str:
    """The PostgreSQL DDL text (``conf/schema_pg.sql``)."""
    return PG_SCHEMA_FILE.read_text(encoding="utf-8")


def pg_statements() -> tuple[str, ...]:
    """The PostgreSQL DDL one statement at a time (without the ``;``). A ``;`` ends a statement
    unless it is inside quotes or a comment (the function bodies hold none of their own)."""
    found: list[str] = []
    current: list[str] = []
    quote = ""
    sql = pg_schema_sql()
    index = 0
    while index < len(sql):
        char = sql[index]
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif sql.startswith("--", index):
            end = sql.find("\n", index)
            index = len(sql) if end < 0 else end
            continue
        elif char == ";":
            statement = "".join(current).strip()
            if statement:
                found.append(statement)
            current = []
            index += 1
            continue
        current.append(char)
        index += 1
    if "".join(current).strip():
        raise ValueError(f"{PG_SCHEMA_FILE}: the last statement has no ';'")
    return tuple(found)


_PG_ROLES_BY_TABLE = _table_roles(pg_schema_sql(), PG_SCHEMA_FILE)

PG_TABLES = tuple(_PG_ROLES_BY_TABLE)
"""The tables ``conf/schema_pg.sql`` creates, in order (the same as :data:`TABLES`)."""
