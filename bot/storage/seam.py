"""The seam between the storage and its database: the only code that knows whether it is SQLite
(a file: PRAGMAs, FTS5, conf/schema.sql) or PostgreSQL (``DATABASE_URL``: connection options,
savepoints, tsvector search, conf/schema_pg.sql). Everything else in the storage is SQL that runs
on both (``INSERT … ON CONFLICT``, ``RETURNING``, ``substr``, ``COUNT``…).

:func:`connect` opens the database; :func:`seam_for` gives the :class:`SQLiteSeam` or
:class:`PostgresSeam` that the storage asks for what differs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import text

from bot.storage import schema
from bot.storage.lean_dataset import dataset
from bot.storage.server import PostgresSearch, ServerDatabase

SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=FULL",
    "PRAGMA busy_timeout=5000",
    "PRAGMA foreign_keys=ON",
    "PRAGMA secure_delete=ON",
)
"""Run on every new SQLite connection. ``secure_delete``: an erased user's rows are overwritten,
not left in free pages for a page scan (or anyone with the file) to find, whatever SQLite's
build defaults to."""
JOURNALED_PRAGMAS = ("PRAGMA synchronous=NORMAL",)
"""Once the update journal is open: each batch is fsynced there before the database commits, so
the database's own commit need not wait for the disk (WAL with NORMAL survives any crash of the
process; what a power loss takes from it, the journal gives back at the next start)."""

POSTGRES_CONNECT_TIMEOUT = 10
"""Seconds to reach the server: a server that is down is one clear error, not a hang."""
APPLICATION_NAME = "erixcast-bot"
"""How the bot's sessions show in ``pg_stat_activity``."""


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def connect(url: str) -> dataset.Database:
    """Open the database: ``sqlite:///path`` or ``postgresql+psycopg://…``
    (``conf.database_url`` makes that form)."""
    if url.startswith("sqlite:"):
        # dataset adds journal_mode=WAL itself; asking twice is harmless and keeps the list whole.
        return dataset.connect(url, on_connect_statements=list(SQLITE_PRAGMAS))
    if url.startswith("postgresql+psycopg:"):
        return ServerDatabase(
            url,
            engine_kwargs={
                "connect_args": {
                    "connect_timeout": POSTGRES_CONNECT_TIMEOUT,
                    "application_name": APPLICATION_NAME,
                },
                # dataset checks a connection out per transaction: a connection the server
                # dropped (restart, failover) is replaced then, not failed on.
                "pool_pre_ping": True,
            },
            sqlite_wal_mode=False,
        )
    raise ValueError("the bot's database is a SQLite file or a postgresql+psycopg:// URL")


def why_not_opened(error: BaseException) -> str:
    """Why the database could not be used, in one line: the driver's own words (a server down,
    a password refused, a missing database or privilege), without SQLAlchemy's SQL and links.
    libpq never repeats the password; the log formatter would hide it anyway."""
    cause = getattr(error, "orig", None) or error
    return f"{type(cause).__name__}: {' '.join(str(cause).split())}"[:800]


class SQLiteSeam:
    """SQLite: the schema from conf/schema.sql, FTS5 search, the journal's PRAGMAs."""

    is_sqlite = True
    TEXT_BYTES = "length(CAST(text AS BLOB))"
    """The UTF-8 size of a row's ``text`` column, in SQL."""

    def create_schema(self, conn: sa.Connection) -> None:
        schema.create_sqlite_schema(conn)

    def journaled(self, conn: sa.Connection) -> None:
        for pragma in JOURNALED_PRAGMAS:
            conn.execute(text(pragma))

    def search(
        self, conn: sa.Connection, user_id: int, terms: Sequence[str], limit: int
    ) -> list[dict[str, Any]]:
        return SQLiteSearch().search(conn, user_id, terms, limit)


class PostgresSeam:
    """PostgreSQL: the schema from conf/schema_pg.sql, tsvector search. No journal: the server
    is where a batch is durable."""

    is_sqlite = False
    TEXT_BYTES = "octet_length(text)"

    def create_schema(self, conn: sa.Connection) -> None:
        schema.create_postgres_schema(conn)

    def journaled(self, conn: sa.Connection) -> None:
        raise RuntimeError("the update journal is SQLite's; on PostgreSQL the server is durable")

    def search(
        self, conn: sa.Connection, user_id: int, terms: Sequence[str], limit: int
    ) -> list[dict[str, Any]]:
        return PostgresSearch().search(conn, user_id, terms, limit)


Seam = SQLiteSeam | PostgresSeam


def seam_for(db: dataset.Database) -> Seam:
    return SQLiteSeam() if db.is_sqlite else PostgresSeam()


class SQLiteSearch:
    """Full-text search over messages and notes with FTS5. The indexes are external-content
    tables kept in step by triggers (see conf/schema.sql), so inserts, edits and erasure reach
    them in the same transaction."""

    _QUERY = text(
        """
        SELECT kind, id, text, at FROM (
            SELECT 'message' AS kind, m.id AS id, m.text AS text, m.sent_at AS at,
                   bm25(messages_fts) AS rank
            FROM messages_fts JOIN messages m ON m.id = messages_fts.rowid
            WHERE messages_fts MATCH :query AND m.user_id = :user_id
              AND substr(m.text, 1, 1) <> '/'
            UNION ALL
            SELECT 'note', n.id, n.text, n.created_at, bm25(notes_fts)
            FROM notes_fts JOIN notes n ON n.id = notes_fts.rowid
            WHERE notes_fts MATCH :query AND n.user_id = :user_id
        )
        ORDER BY rank, at DESC
        LIMIT :limit
        """
    )

    def search(
        self, conn: sa.Connection, user_id: int, terms: Sequence[str], limit: int
    ) -> list[dict[str, Any]]:
        """All terms (as prefixes) first; when nothing has them all, any of them."""
        quoted = ['"' + term.replace('"', '""') + '"*' for term in terms]
        for joiner in (" ", " OR "):
            rows = conn.execute(
                self._QUERY, {"query": joiner.join(quoted), "user_id": user_id, "limit": limit}
            ).mappings()
            found = [dict(row) for row in rows]
            if found or len(quoted) == 1:
                return found
        return []
