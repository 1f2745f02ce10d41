"""A user's own view of what is kept about them: numbers, an export, and erasure."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import text

from bot import codec
from bot.clock import utc_now
from bot.limits import ROW_BYTES
from bot.storage.history import HistoryStore
from bot.storage.notes import NoteStore
from bot.storage.persistence_rows import (
    CHAT_DATA,
    CONVERSATION,
    USER_DATA,
    PersistenceStore,
    key_ids,
)
from bot.storage.values import timestamp


class AccountStore(HistoryStore, NoteStore, PersistenceStore):
    def user_stats(self, user_id: int) -> dict[str, Any]:
        with self.db:
            kinds = {
                row["kind"]: int(row["n"])
                for row in self._rows(
                    text(
                        "SELECT kind, COUNT(*) AS n FROM messages WHERE user_id = :user_id "
                        "GROUP BY kind ORDER BY n DESC, kind"
                    ),
                    {"user_id": int(user_id)},
                )
            }
            edited = self._run(
                text(
                    "SELECT COUNT(*) FROM messages WHERE user_id = :user_id "
                    "AND edited_at IS NOT NULL"
                ),
                {"user_id": int(user_id)},
            ).scalar_one()
            notes = self._run(
                text("SELECT COUNT(*) FROM notes WHERE user_id = :user_id"),
                {"user_id": int(user_id)},
            ).scalar_one()
            user = self.get_user(user_id)
        return {
            "user": user,
            "messages": sum(kinds.values()),
            "by_kind": kinds,
            "edited": int(edited),
            "notes": int(notes),
        }

    def stored_bytes(self, user_id: int) -> int:
        """What the user's messages and notes count against the quota (``limits.stored_size``
        of each row, summed over the user's index ranges)."""
        with self.db:
            total = 0
            for table in ("messages", "notes"):
                total += int(
                    self._run(
                        text(
                            f"SELECT COALESCE(SUM({ROW_BYTES} + "
                            f"COALESCE({self.seam.TEXT_BYTES}, 0)), 0) FROM {table} "
                            "WHERE user_id = :user_id"
                        ),
                        {"user_id": int(user_id)},
                    ).scalar_one()
                )
        return total

    def export_header(self, user_id: int) -> dict[str, Any]:
        """The small part of an export (the user's row and persisted data); the messages and
        notes are read in pages (:meth:`messages_page`, :meth:`notes_after`)."""
        with self.db as tx:
            user = tx["users"].find_one(id=int(user_id))
            persisted = {
                kind: self._persisted_value(kind, "", codec.dumps(int(user_id)))
                for kind in (USER_DATA, CHAT_DATA)
            }
        return {
            "user": dict(user) if user is not None else None,
            "user_data": persisted[USER_DATA],
            "private_chat_data": persisted[CHAT_DATA],
        }

    def notes_after(self, user_id: int, after_id: int, limit: int) -> list[dict[str, Any]]:
        """The user's notes with ``id`` above ``after_id``, oldest first (keyset pages)."""
        with self.db:
            return self._rows(
                text(
                    "SELECT id, text, created_at FROM notes WHERE user_id = :user_id "
                    "AND id > :after ORDER BY id LIMIT :limit"
                ),
                {"user_id": int(user_id), "after": int(after_id), "limit": int(limit)},
            )

    def erase_user(
        self, user_id: int, update_id: int | None = None, at: datetime | None = None
    ) -> dict[str, int]:
        """Delete everything of the user: their row, messages (and their private chat's),
        notes, the private chat, messages to it not sent yet, and their persistence rows (user
        data, private chat data, conversation states keyed by them). Counts per table.

        With the erasing ``update_id`` (and its time), the erasure is recorded in the
        ``erasures`` table in the same transaction: on a server that row is the record every
        restore makes again (``watchdog/data/erasures_pg.py``)."""
        uid = int(user_id)
        key = codec.dumps(uid)
        counts: dict[str, int] = {}
        with self.db:
            if update_id is not None:
                self._run(
                    text(
                        "INSERT INTO erasures (user_id, update_id, erased_at) "
                        "VALUES (:uid, :update_id, :at) ON CONFLICT (user_id, update_id) "
                        "DO NOTHING"
                    ),
                    {"uid": uid, "update_id": int(update_id), "at": timestamp(at or utc_now())},
                )
            self._run(
                text(
                    "DELETE FROM outbox_claims WHERE id IN "
                    "(SELECT id FROM outbox WHERE chat_id = :uid)"
                ),
                {"uid": uid},
            )
            for table, statement in (
                ("messages", "DELETE FROM messages WHERE user_id = :uid OR chat_id = :uid"),
                ("notes", "DELETE FROM notes WHERE user_id = :uid"),
                ("users", "DELETE FROM users WHERE id = :uid"),
                ("chats", "DELETE FROM chats WHERE id = :uid"),
                # Messages not sent yet to their private chat may quote what is erased.
                ("outbox", "DELETE FROM outbox WHERE chat_id = :uid"),
            ):
                counts[table] = int(self._run(text(statement), {"uid": uid}).rowcount or 0)
            removed = 0
            for kind in (USER_DATA, CHAT_DATA):
                removed += self._delete_persisted(kind, "", key)
            for row in self._rows(
                text("SELECT name, key FROM persistence WHERE kind = :kind"),
                {"kind": CONVERSATION},
            ):
                if uid in key_ids(row["key"]):
                    self._delete_persisted(CONVERSATION, row["name"], row["key"])
                    removed += 1
            counts["persistence"] = removed
        return counts
