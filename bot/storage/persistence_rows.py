"""The ``persistence`` table: one row per key of python-telegram-bot's data (see
:mod:`bot.persistence`), its value in :mod:`bot.codec`'s JSON."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import text

from bot import codec
from bot.storage.base import StorageBase
from bot.storage.values import timestamp

# Kinds of persistence rows (one row per key: per user, per chat, per bot_data key, ...).
USER_DATA = "user_data"
CHAT_DATA = "chat_data"
BOT_DATA = "bot_data"
CALLBACK_DATA = "callback_data"
CONVERSATION = "conversation"

_UPSERT_PERSISTENCE = text(
    """
    INSERT INTO persistence (kind, name, key, value, updated_at)
    VALUES (:kind, :name, :key, :value, :now)
    ON CONFLICT (kind, name, key) DO UPDATE SET
        value = excluded.value, updated_at = excluded.updated_at
    """
)
_DELETE_PERSISTENCE = text(
    "DELETE FROM persistence WHERE kind = :kind AND name = :name AND key = :key"
)


def key_ids(encoded: str) -> set[int]:
    """The integers in a stored conversation key (chat and user ids)."""
    try:
        key = codec.loads(encoded)
    except ValueError:
        return set()
    parts = key if isinstance(key, tuple | list) else (key,)
    return {part for part in parts if type(part) is int}


class PersistenceStore(StorageBase):
    def load_persistence(self, kind: str, name: str | None = None) -> list[tuple[str, str, str]]:
        """``(name, key, value)`` rows of one kind (and name), in key order."""
        query = "SELECT name, key, value FROM persistence WHERE kind = :kind"
        params: dict[str, Any] = {"kind": kind}
        if name is not None:
            query += " AND name = :name"
            params["name"] = name
        with self.db:
            rows = self._run(text(query + " ORDER BY name, key"), params).all()
        return [(row[0], row[1], row[2]) for row in rows]

    def load_persistence_row(self, kind: str, name: str, key: str) -> str | None:
        """One row's value text as the database holds it now (None: no such row)."""
        with self.db:
            row = self._run(
                text(
                    "SELECT value FROM persistence "
                    "WHERE kind = :kind AND name = :name AND key = :key"
                ),
                {"kind": kind, "name": name, "key": key},
            ).first()
        return None if row is None else str(row[0])

    def write_persistence(
        self, changes: Sequence[tuple[str, str, str, str | None]], now: datetime
    ) -> None:
        """Apply ``(kind, name, key, value)`` changes; a ``None`` value deletes the row."""
        if not changes:
            return
        stamp = timestamp(now)
        with self.db:
            for kind, name, key, value in changes:
                if value is None:
                    self._delete_persisted(kind, name, key)
                else:
                    self._run(
                        _UPSERT_PERSISTENCE,
                        {"kind": kind, "name": name, "key": key, "value": value, "now": stamp},
                    )

    def _delete_persisted(self, kind: str, name: str, key: str) -> int:
        """Rows deleted (0 or 1), inside the caller's transaction."""
        result = self._run(_DELETE_PERSISTENCE, {"kind": kind, "name": name, "key": key})
        return int(result.rowcount or 0)

    def _persisted_value(self, kind: str, name: str, key: str) -> Any:
        row = self._run(
            text(
                "SELECT value FROM persistence WHERE kind = :kind AND name = :name AND key = :key"
            ),
            {"kind": kind, "name": name, "key": key},
        ).first()
        # Stored in the codec's tagged JSON form, which is plain JSON as it is.
        return None if row is None else json.loads(row[0])
