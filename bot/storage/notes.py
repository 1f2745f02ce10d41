"""Notes: short texts a user asks the bot to keep, numbered in the order they were saved."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text

from bot.storage.base import StorageBase
from bot.storage.values import clean_text, timestamp

NOTE_MAX_CHARS = 4096
"""A note is at most one Telegram message long."""


@dataclass(frozen=True)
class Note:
    number: int
    id: int
    text: str
    created_at: datetime


class NoteStore(StorageBase):
    def add_note(
        self,
        user_id: int,
        note: str,
        now: datetime,
        source: tuple[int, int] | None = None,
    ) -> Note:
        """Save a note; its number in the user's list. The same source message (a redelivered
        update) gives back the note it made instead of a second one."""
        note = clean_text(note) or ""
        if not note.strip():
            raise ValueError("a note cannot be empty")
        if len(note) > NOTE_MAX_CHARS:
            raise ValueError(f"a note holds at most {NOTE_MAX_CHARS} characters")
        chat_id, message_id = source if source is not None else (None, None)
        with self.db:
            result = self._run(
                text(
                    "INSERT INTO notes (user_id, text, created_at, source_chat_id, "
                    "source_message_id) VALUES (:user_id, :text, :now, :chat_id, :message_id) "
                    "ON CONFLICT (source_chat_id, source_message_id) DO NOTHING RETURNING id"
                ),
                {
                    "user_id": int(user_id),
                    "text": note,
                    "now": timestamp(now),
                    "chat_id": chat_id,
                    "message_id": message_id,
                },
            )
            note_id = result.scalar()
            if note_id is None:  # the source's note is there already
                note_id = self._run(
                    text(
                        "SELECT id FROM notes WHERE source_chat_id = :chat_id "
                        "AND source_message_id = :message_id"
                    ),
                    {"chat_id": chat_id, "message_id": message_id},
                ).scalar_one()
            row = self._rows(
                text(
                    "SELECT id, text, created_at, (SELECT COUNT(*) FROM notes AS earlier "
                    "WHERE earlier.user_id = notes.user_id AND earlier.id <= notes.id) AS number "
                    "FROM notes WHERE id = :id"
                ),
                {"id": note_id},
            )[0]
        return _note(int(row["number"]), row)

    def count_notes(self, user_id: int) -> int:
        with self.db:
            return int(
                self._run(
                    text("SELECT COUNT(*) FROM notes WHERE user_id = :user_id"),
                    {"user_id": int(user_id)},
                ).scalar_one()
            )

    def notes_page(self, user_id: int, offset: int, limit: int) -> list[Note]:
        """``limit`` of the user's notes from number ``offset + 1`` on (an index range: the
        notes before it are skipped in the index, not loaded)."""
        with self.db:
            rows = self._rows(
                text(
                    "SELECT id, text, created_at FROM notes WHERE user_id = :user_id "
                    "ORDER BY id LIMIT :limit OFFSET :offset"
                ),
                {"user_id": int(user_id), "limit": max(0, int(limit)), "offset": max(0, offset)},
            )
        return [_note(number, row) for number, row in enumerate(rows, start=offset + 1)]

    def forget_note(self, user_id: int, number: int) -> Note | None:
        """Delete the user's note with this number (as /notes shows it); the note, or None."""
        if number < 1:
            return None
        with self.db:
            found = self.notes_page(user_id, number - 1, 1)
            if not found:
                return None
            self._run(text("DELETE FROM notes WHERE id = :id"), {"id": found[0].id})
        return found[0]


def _note(number: int, row: dict) -> Note:
    return Note(
        number=number,
        id=int(row["id"]),
        text=row["text"],
        created_at=datetime.fromisoformat(row["created_at"]),
    )
