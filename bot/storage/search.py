"""Search through a user's own messages and notes."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text

from bot.storage.base import StorageBase
from bot.storage.values import clean_text

SEARCH_MAX_TERMS = 16
SEARCH_MAX_TERM_CHARS = 64


def search_terms(query: str) -> list[str]:
    """The words of a search: letters and digits in any script, bounded in number and length."""
    words = re.findall(r"\w+", clean_text(query) or "")
    return [word[:SEARCH_MAX_TERM_CHARS] for word in words[:SEARCH_MAX_TERMS]]


@dataclass(frozen=True)
class SearchHit:
    kind: str  # "message" or "note"
    text: str
    at: datetime


class SearchStore(StorageBase):
    def search(self, user_id: int, query: str, limit: int = 10) -> list[SearchHit]:
        """The user's own messages (commands left out) and notes matching ``query``, best
        first. Empty when the query has no words."""
        terms = search_terms(query)
        if not terms:
            return []
        with self.db:
            if self.search_index is not None:
                rows = self.search_index.search(self.db.executable, int(user_id), terms, limit)
            else:  # pragma: no cover - a server database gets its own search later
                rows = self._search_like(int(user_id), terms, limit)
        return [
            SearchHit(kind=row["kind"], text=row["text"], at=datetime.fromisoformat(row["at"]))
            for row in rows
        ]

    def _search_like(
        self, user_id: int, terms: Sequence[str], limit: int
    ) -> list[dict[str, Any]]:  # pragma: no cover - portable fallback, unranked
        pattern = "%" + terms[0].replace("%", "").replace("_", "") + "%"
        return self._rows(
            text(
                "SELECT 'note' AS kind, id, text, created_at AS at FROM notes "
                "WHERE user_id = :user_id AND text LIKE :pattern "
                "UNION ALL SELECT 'message', id, text, sent_at FROM messages "
                "WHERE user_id = :user_id AND text LIKE :pattern AND text NOT LIKE '/%' "
                "ORDER BY at DESC LIMIT :limit"
            ),
            {"user_id": user_id, "pattern": pattern, "limit": limit},
        )
