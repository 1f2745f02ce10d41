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
                    "ON CONFLICT (source_chat_id, source_message_id) DO NOTHING"
                ),
                {
                    "user_id": int(user_id),
                    "text": note,
                    "now": timestamp(now),
                    "chat_id": chat_id,
                    "message_id": message_id,
                },
            )
            if result.rowcount:
                note_id = result.lastrowid
            else:
                note_id = self._run(
                    text(
                        "SELECT id FROM notes WHERE source_chat_id = :chat_id "
                        "AND source_message_id = :message_id"
                    ),
                    {"chat_id": chat_id, "message_id": message_id},
                ).scalar_one()
            notes = self.list_notes(user_id)
        for found in notes:
            if found.id == note_id:
                return found
        raise RuntimeError("the note just saved is missing")  # pragma: no cover

    def list_notes(self, user_id: int) -> list[Note]:
        with self.db:
            rows = self._rows(
                text("SELECT id, text, created_at FROM notes WHERE user_id = :user_id ORDER BY id"),
                {"user_id": int(user_id)},
            )
        return [
            Note(
                number=number,
                id=int(row["id"]),
                text=row["text"],
                created_at=datetime.fromisoformat(row["created_at"]),
            )
            for number, row in enumerate(rows, start=1)
        ]

    def forget_note(self, user_id: int, number: int) -> Note | None:
        """Delete the user's note with this number (as /notes shows it); the note, or None."""
        with self.db:
            notes = self.list_notes(user_id)
            if not 1 <= number <= len(notes):
                return None
            note = notes[number - 1]
            self._run(text("DELETE FROM notes WHERE id = :id"), {"id": note.id})
        return note
