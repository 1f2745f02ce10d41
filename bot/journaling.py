"""The bot's side of the update journal (:mod:`conf.journal`): the raw updates of the open
batch, appended and fsynced in the batch's group commit, just before the database commits and
long before Telegram is told the updates are done."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from telegram import Update

from conf.journal import UPDATE, JournalEntry, JournalWriter


class BatchJournal:
    """What the open batch will append. Call :meth:`flush` on the database thread."""

    def __init__(self, writer: JournalWriter, clock: Callable[[], float] = time.time) -> None:
        self.writer = writer
        self.clock = clock
        self._pending: list[tuple[int, Mapping[str, Any], int | None]] = []
        self._erasing: set[int] = set()
        """Updates that erased their sender: not journaled (their user is gone from it)."""

    def add(self, update: Update, raw: Mapping[str, Any] | None) -> None:
        """The update as Telegram sent it (re-encoded by python-telegram-bot when the raw JSON
        is not at hand)."""
        if update.update_id in self._erasing:
            self._erasing.discard(update.update_id)
            return
        user = update.effective_user
        self._pending.append(
            (update.update_id, raw if raw is not None else update.to_dict(), user and user.id)
        )

    @property
    def pending(self) -> int:
        return len(self._pending)

    def flush(self) -> None:
        """Append the batch's updates durably; on failure they stay pending and the batch must
        not commit."""
        at = self.clock()
        entries = [JournalEntry(UPDATE, uid, at, user, raw) for uid, raw, user in self._pending]
        self.writer.append(entries)
        self._pending.clear()

    def erase_user(self, user_id: int, update_id: int) -> int:
        """Take the user out of the journal — the batch's pending updates, every segment, and
        the update doing the erasure — and record the erasure. On the database thread."""
        self._pending = [entry for entry in self._pending if entry[2] != user_id]
        self._erasing.add(update_id)
        return self.writer.erase_user(user_id, update_id, self.clock())

    def discard(self) -> None:
        self._pending.clear()
        self._erasing.clear()
