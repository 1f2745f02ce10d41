"""The outbox: messages decided while an update was handled, stored in that update's
transaction and deleted once sent (see :mod:`bot.delivery`)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import text

from bot.storage.base import StorageBase
from bot.storage.values import timestamp

log = logging.getLogger(__name__)

OUTBOX_LOADED_AT_START = 10_000
"""At most this many stored messages are sent again after a restart, the oldest first."""


class OutboxStore(StorageBase):
    def outbox_add(self, chat_id: int, method: str, params: dict[str, Any], now: datetime) -> int:
        """Store one message to send; its row id. Joins the open batch."""
        with self.db:
            result = self._run(
                text(
                    "INSERT INTO outbox (chat_id, method, params, created_at) "
                    "VALUES (:chat_id, :method, :params, :now) RETURNING id"
                ),
                {
                    "chat_id": int(chat_id),
                    "method": method,
                    "params": json.dumps(params, ensure_ascii=False, separators=(",", ":")),
                    "now": timestamp(now),
                },
            ).scalar_one()
        return int(result)

    def outbox_done(self, ids: Iterable[int]) -> None:
        wanted = [int(i) for i in ids]
        if not wanted:
            return
        with self.db:
            for row_id in wanted:
                self._run(text("DELETE FROM outbox WHERE id = :id"), {"id": row_id})

    def outbox_pending(
        self, methods: Iterable[str], limit: int = OUTBOX_LOADED_AT_START
    ) -> list[tuple[int, int, str, dict[str, Any]]]:
        """What is still to send, oldest first: ``(id, chat_id, method, params)``. A row that is
        not one of ours (another method, parameters that are not a JSON object) is left out
        and deleted: it can only be damage, and sending it could only do harm."""
        allowed = set(methods)
        rows = []
        damaged = []
        with self.db:
            for row in self._rows(
                text("SELECT id, chat_id, method, params FROM outbox ORDER BY id LIMIT :n"),
                {"n": int(limit)},
            ):
                try:
                    params = json.loads(row["params"])
                    chat_id = int(row["chat_id"])
                except (TypeError, ValueError):
                    params, chat_id = None, 0
                if row["method"] not in allowed or not isinstance(params, dict):
                    damaged.append(int(row["id"]))
                    continue
                rows.append((int(row["id"]), chat_id, str(row["method"]), params))
        if damaged:
            log.warning("dropping %d outbox rows that are not the bot's messages", len(damaged))
            self.outbox_done(damaged)
        return rows
