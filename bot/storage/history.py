"""Users, chats and the message history."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text

from bot.storage.base import StorageBase
from bot.storage.values import clean_text, text_or_none, timestamp

USER_FIELDS = ("first_name", "last_name", "username", "language_code")

_TOUCH_USER = text(
    """
    INSERT INTO users (id, first_name, last_name, username, language_code,
                       first_seen, last_seen, message_count)
    VALUES (:id, :first_name, :last_name, :username, :language_code, :now, :now, :count)
    ON CONFLICT (id) DO UPDATE SET
        first_name = excluded.first_name,
        last_name = excluded.last_name,
        username = excluded.username,
        language_code = excluded.language_code,
        last_seen = excluded.last_seen,
        message_count = users.message_count + excluded.message_count
    """
)
_TOUCH_CHAT = text(
    """
    INSERT INTO chats (id, type, title, username, first_seen, last_seen)
    VALUES (:id, :type, :title, :username, :now, :now)
    ON CONFLICT (id) DO UPDATE SET
        type = excluded.type, title = excluded.title, username = excluded.username,
        last_seen = excluded.last_seen
    """
)
_INSERT_MESSAGE = text(
    """
    INSERT INTO messages (chat_id, message_id, user_id, kind, text, sent_at, update_id)
    VALUES (:chat_id, :message_id, :user_id, :kind, :text, :sent_at, :update_id)
    ON CONFLICT (chat_id, message_id) DO NOTHING
    """
)
_SET_EDITED_AT = text(
    "UPDATE messages SET edited_at = :edited_at "
    "WHERE chat_id = :chat_id AND message_id = :message_id"
)


@dataclass(frozen=True)
class UserRecord:
    id: int
    first_name: str | None
    last_name: str | None
    username: str | None
    language_code: str | None
    first_seen: datetime
    last_seen: datetime
    message_count: int

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> UserRecord:
        return cls(
            id=int(row["id"]),
            first_name=row["first_name"],
            last_name=row["last_name"],
            username=row["username"],
            language_code=row["language_code"],
            first_seen=datetime.fromisoformat(row["first_seen"]),
            last_seen=datetime.fromisoformat(row["last_seen"]),
            message_count=int(row["message_count"]),
        )

    @property
    def is_new(self) -> bool:
        """Seen exactly once: the message being handled is the first."""
        return self.message_count <= 1


@dataclass(frozen=True)
class IncomingMessage:
    """What the history keeps of one message."""

    chat_id: int
    message_id: int
    user_id: int | None
    kind: str
    text: str | None
    sent_at: datetime
    update_id: int | None = None


class HistoryStore(StorageBase):
    # ------------------------------------------------------------------------------- users
    def touch_user(
        self, user: Mapping[str, Any], now: datetime, *, counted: bool = True
    ) -> UserRecord:
        """Insert the user, or refresh their names and last_seen; message_count goes up by one
        when ``counted``. One atomic upsert (SQLite and PostgreSQL alike)."""
        params: dict[str, Any] = {name: text_or_none(user.get(name)) for name in USER_FIELDS}
        params.update(id=int(user["id"]), now=timestamp(now), count=1 if counted else 0)
        with self.db as tx:
            self._run(_TOUCH_USER, params)
            row = tx["users"].find_one(id=params["id"])
        assert row is not None
        return UserRecord.from_row(row)

    def get_user(self, user_id: int) -> UserRecord | None:
        with self.db as tx:
            row = tx["users"].find_one(id=int(user_id))
        return None if row is None else UserRecord.from_row(row)

    def count_users(self) -> int:
        with self.db as tx:
            return int(tx["users"].count())

    def touch_chat(self, chat: Mapping[str, Any], now: datetime) -> None:
        with self.db:
            self._run(
                _TOUCH_CHAT,
                {
                    "id": int(chat["id"]),
                    "type": str(chat.get("type") or "unknown"),
                    "title": text_or_none(chat.get("title")),
                    "username": text_or_none(chat.get("username")),
                    "now": timestamp(now),
                },
            )

    # ----------------------------------------------------------------------------- history
    def record_message(
        self,
        message: IncomingMessage,
        user: Mapping[str, Any] | None,
        chat: Mapping[str, Any],
        now: datetime,
        *,
        keep: bool = True,
    ) -> tuple[UserRecord | None, bool]:
        """Store a new message, the chat and the sender; ``(sender, stored)``. A message already
        stored (same chat and message id: a redelivery) is not stored or counted again; nor is
        one not to ``keep`` (its sender is at their quota): only the chat and sender are
        refreshed, in place."""
        with self.db:
            self.touch_chat(chat, now)
            stored = keep and bool(self._insert_message(message).rowcount)
            record = self.touch_user(user, now, counted=stored) if user is not None else None
        return record, stored

    def record_edit(self, message: IncomingMessage, edited_at: datetime) -> bool:
        """The edited text replaces the stored one (the search index follows). True when the
        message was known; an edit of a message never seen is stored as a new message."""
        where = {"chat_id": message.chat_id, "message_id": message.message_id}
        with self.db:
            result = self._run(
                text(
                    "UPDATE messages SET text = :text, kind = :kind, edited_at = :edited_at "
                    "WHERE chat_id = :chat_id AND message_id = :message_id"
                ),
                {
                    "text": clean_text(message.text),
                    "kind": message.kind,
                    "edited_at": timestamp(edited_at),
                    **where,
                },
            )
            if result.rowcount:
                return True
            self._insert_message(message)
            self._run(_SET_EDITED_AT, {"edited_at": timestamp(edited_at), **where})
        return False

    def _insert_message(self, message: IncomingMessage) -> Any:
        """Insert unless already stored (the result's rowcount says which)."""
        return self._run(
            _INSERT_MESSAGE,
            {
                "chat_id": message.chat_id,
                "message_id": message.message_id,
                "user_id": message.user_id,
                "kind": message.kind,
                "text": clean_text(message.text),
                "sent_at": timestamp(message.sent_at),
                "update_id": message.update_id,
            },
        )

    def message_text(self, chat_id: int, message_id: int) -> tuple[bool, str | None]:
        """Whether the message is stored, and its text (for what an edit changes in size)."""
        with self.db:
            row = self._run(
                text(
                    "SELECT text FROM messages WHERE chat_id = :chat_id "
                    "AND message_id = :message_id"
                ),
                {"chat_id": int(chat_id), "message_id": int(message_id)},
            ).first()
        return (row is not None, row[0] if row is not None else None)

    def messages_page(self, user_id: int, after_id: int, limit: int) -> list[dict[str, Any]]:
        """The user's messages with ``id`` above ``after_id``, oldest first, at most ``limit``
        (keyset pagination over ``ix_messages_user``: each page costs the same)."""
        with self.db:
            return self._rows(
                text(
                    "SELECT id, chat_id, message_id, kind, text, sent_at, edited_at FROM messages "
                    "WHERE user_id = :user_id AND id > :after ORDER BY id LIMIT :limit"
                ),
                {"user_id": int(user_id), "after": int(after_id), "limit": int(limit)},
            )
