"""PostgreSQL's side of the seam (:mod:`bot.storage.seam`): transactions that survive a failed
statement, and search over the generated ``search_vector`` columns of conf/schema_pg.sql."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy import text

from bot.storage.lean_dataset import dataset


class ServerDatabase(dataset.Database):
    """dataset's Database, but a storage call inside an open transaction (a batch) runs in a
    savepoint.

    On SQLite a statement that fails leaves the transaction usable: the handler's error is
    reported, the batch goes on and commits. PostgreSQL instead aborts the whole transaction at
    the first error, so one bad update would fail every commit of its batch and, redelivered,
    again after each restart. A savepoint per call (the first level of nesting only: calls a
    call makes share it) gives back SQLite's behaviour: the failed call's statements are undone,
    the rest of the batch stands.
    """

    def begin(self) -> None:
        stack = getattr(self.local, "tx", None)
        if stack is not None and len(stack) == 1 and self.executable.in_transaction():
            stack.append(self.executable.begin_nested())
        else:
            super().begin()

    def commit(self) -> None:
        stack = getattr(self.local, "tx", None)
        if stack is not None and len(stack) > 1 and stack[-1] is not True:
            stack.pop().commit()
        else:
            super().commit()

    def rollback(self) -> None:
        stack = getattr(self.local, "tx", None)
        if stack is not None and len(stack) > 1 and stack[-1] is not True:
            stack.pop().rollback()
            self._flush_tables()
        else:
            super().rollback()


class PostgresSearch:
    """Full-text search with ``to_tsquery``: each term a prefix (``term:*``) folded the way the
    stored vectors are (``erixcast_fold``: accents off; the 'simple' configuration: lower case,
    no stemming), ranked by ``ts_rank``, the newest first among equals, as SQLiteSearch does."""

    _FOUND = """
        SELECT kind, id, text, at FROM (
            SELECT 'message' AS kind, m.id AS id, m.text AS text, m.sent_at AS at,
                   ts_rank(m.search_vector, q.query) AS rank
            FROM messages m, q
            WHERE m.search_vector @@ q.query AND m.user_id = :user_id
              AND substr(m.text, 1, 1) <> '/'
            UNION ALL
            SELECT 'note', n.id, n.text, n.created_at, ts_rank(n.search_vector, q.query)
            FROM notes n, q
            WHERE n.search_vector @@ q.query AND n.user_id = :user_id
        ) AS found
        ORDER BY rank DESC, at DESC
        LIMIT :limit
        """

    @staticmethod
    def _term(index: int) -> str:
        """One term as a prefix query. Folding comes first and may make quotes (unaccent turns
        ʼ into '), so what would end the quoted lexeme becomes a blank before it is quoted."""
        return (
            "to_tsquery('simple', concat(CAST(:open AS text), "
            f"translate(erixcast_fold(CAST(:t{index} AS text)), CAST(:unsafe AS text), "
            "CAST(:blanks AS text)), CAST(:close AS text)))"
        )

    def search(
        self, conn: sa.Connection, user_id: int, terms: Sequence[str], limit: int
    ) -> list[dict[str, Any]]:
        """All terms (as prefixes) first; when nothing has them all, any of them."""
        params: dict[str, Any] = {
            "user_id": user_id,
            "limit": limit,
            "open": "'",
            "close": "':*",
            "unsafe": "'\\",
            "blanks": "  ",
        }
        params.update({f"t{index}": term for index, term in enumerate(terms)})
        parts = [self._term(index) for index in range(len(terms))]
        for operator in (" && ", " || "):
            statement = text(f"WITH q AS (SELECT {operator.join(parts)} AS query) {self._FOUND}")
            found = [dict(row) for row in conn.execute(statement, params).mappings()]
            if found or len(terms) == 1:
                return found
        return []
