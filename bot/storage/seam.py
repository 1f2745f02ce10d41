"""The SQLite seam: the connection settings and full-text search, the only SQLite-specific code
besides the schema file. Everything else in the storage is portable SQL (``INSERT … ON
CONFLICT`` works in SQLite and PostgreSQL alike), so a ``DATABASE_URL`` for PostgreSQL later
swaps this seam, not the bot."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import dataset
import sqlalchemy as sa
from sqlalchemy import text

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


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def connect(url: str) -> dataset.Database:
    """Open the database; the SQLite-specific connection settings live here and nowhere else."""
    if url.startswith("sqlite:"):
        # dataset adds journal_mode=WAL itself; asking twice is harmless and keeps the list whole.
        return dataset.connect(url, on_connect_statements=list(SQLITE_PRAGMAS))
    return dataset.connect(url, sqlite_wal_mode=False)


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
