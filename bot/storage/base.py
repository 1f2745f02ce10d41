"""What every part of :class:`~bot.storage.Storage` shares: the connection and the way
statements run on it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dataset

from bot.storage.seam import SQLiteSearch


class StorageBase:
    def __init__(self, db: dataset.Database) -> None:
        self.db = db
        self.is_sqlite = db.is_sqlite
        self.search_index = SQLiteSearch() if self.is_sqlite else None
        self._batch_open = False

    def _run(self, statement: Any, params: Mapping[str, Any] | None = None) -> Any:
        """Execute on this thread's connection (inside the caller's ``with self.db``)."""
        return self.db.executable.execute(statement, dict(params or {}))

    def _rows(self, statement: Any, params: Mapping[str, Any] | None = None) -> list[dict]:
        return [dict(row) for row in self._run(statement, params).mappings()]
