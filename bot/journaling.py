"""The bot's side of the update journal (:mod:`conf.journal`): the raw updates of the open
batch, appended and fsynced in the batch's group commit, just before the database commits and
long before Telegram is told the updates are done."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from telegram import Update

from conf.erasures import record_erasure
from conf.journal import UPDATE, JournalEntry, JournalWriter

log = logging.getLogger(__name__)


class ErasureNotRecorded(OSError):
    """An erasure of the open batch could not be recorded: the batch must not commit (the
    database would hold the erasure and no restore would make it again)."""


class BatchJournal:
    """What the open batch will append. Call :meth:`flush` on the database thread."""

    def __init__(self, writer: JournalWriter, clock: Callable[[], float] = time.time) -> None:
        self.writer = writer
        self.clock = clock
        self._pending: list[tuple[int, Mapping[str, Any], int | None]] = []
        self._erasing: set[int] = set()
        """Updates that erased their sender: not journaled (their user is gone from it)."""
        self._unrecorded: list[str] = []
        """Why erasures of the open batch are not recorded: :meth:`flush` refuses to let it commit."""

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
        not commit. Refused while an erasure of the batch is not recorded."""
        if self._unrecorded:
            raise ErasureNotRecorded(
                f"the batch erased a user but the erasure record could not be written "
                f"({'; '.join(self._unrecorded)}): it is rolled back, nothing is confirmed"
            )
        at = self.clock()
        entries = [JournalEntry(UPDATE, uid, at, user, raw) for uid, raw, user in self._pending]
        self.writer.append(entries)
        self._pending.clear()

    def erase_user(self, user_id: int, update_id: int) -> int:
        """Record the erasure durably, then take the user out of the journal — the batch's
        pending updates, every segment, and the update doing the erasure. On the database
        thread, inside the batch that erases the rows: a record that cannot be written raises
        :class:`ErasureNotRecorded` and the batch can no longer commit (the rows come back,
        the update is handled again later), so the database never holds an unrecorded erasure.
        A segment that cannot be rewritten is said loudly; replay skips the user's updates."""
        try:
            record_erasure(self.writer.folder, user_id, update_id, self.clock())
        except OSError as error:
            why = f"{type(error).__name__}: {error.strerror or error}"
            self._unrecorded.append(why)
            log.critical("cannot record the erasure of update %s (%s)", update_id, why)
            raise ErasureNotRecorded(f"cannot record the erasure ({why})") from error
        self._pending = [entry for entry in self._pending if entry[2] != user_id]
        self._erasing.add(update_id)
        try:
            return self.writer.remove_user(user_id)
        except OSError as error:
            log.error(
                "erasure recorded, but the journal's segments still hold the user's updates "
                "(%s); replay never applies them, the next erasure or pruning removes them",
                error.strerror or error,
            )
            return 0

    def discard(self) -> None:
        self._pending.clear()
        self._erasing.clear()
        self._unrecorded.clear()
