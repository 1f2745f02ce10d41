"""Search through a user's own messages and notes."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

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
            rows = self.seam.search(self.db.executable, int(user_id), terms, limit)
        return [
            SearchHit(kind=row["kind"], text=row["text"], at=datetime.fromisoformat(row["at"]))
            for row in rows
        ]
