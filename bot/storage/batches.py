"""Batches: the transaction an update's effects join, committed with the update_ids it handled
(see :mod:`bot.durable`), and the record of processed updates that keeps redeliveries out."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import text

from bot.storage.base import StorageBase
from bot.storage.values import timestamp

PROCESSED_UPDATES_KEPT = timedelta(days=7)
"""Telegram keeps an unconfirmed update for 24 hours; a week of update_ids is plenty."""

_RECORD_UPDATE = text(
    """
    INSERT INTO processed_updates (update_id, processed_at) VALUES (:update_id, :now)
    ON CONFLICT (update_id) DO NOTHING
    """
)
_CLAIM_UPDATE = text(
    """
    INSERT INTO processed_updates (update_id, processed_at) VALUES (:update_id, :now)
    ON CONFLICT (update_id) DO NOTHING RETURNING update_id
    """
)


class UpdateBatches(StorageBase):
    @property
    def batch_open(self) -> bool:
        return self._batch_open

    def begin_batch(self) -> None:
        """Open the transaction that the next calls join (idempotent)."""
        if not self._batch_open:
            self.db.begin()
            self._batch_open = True

    def commit_batch(self, update_ids: Iterable[int], now: datetime) -> None:
        """Record the handled update_ids and commit everything the batch did, in one go."""
        self.begin_batch()
        try:
            stamp = timestamp(now)
            for update_id in update_ids:
                self._run(_RECORD_UPDATE, {"update_id": int(update_id), "now": stamp})
            self.db.commit()
            self.check_file()  # committed into the file we opened, still the one at its path?
        except BaseException:
            self.db.rollback()
            raise
        finally:
            self._batch_open = False

    def claim_update(self, update_id: int, now: datetime) -> bool:
        """Record the update_id in the open batch before its handler runs: False when it is
        recorded already. For several instances on one PostgreSQL database (webhook mode): the
        unique key, not a read, decides. An instance claiming an update that another one's open
        batch holds waits for that batch: committed, it gets False; rolled back, True."""
        self.begin_batch()
        with self.db:
            row = self._run(
                _CLAIM_UPDATE, {"update_id": int(update_id), "now": timestamp(now)}
            ).first()
        return row is not None

    def rollback_batch(self) -> None:
        if self._batch_open:
            self._batch_open = False
            self.db.rollback()

    def is_processed(self, update_id: int) -> bool:
        with self.db:
            row = self._run(
                text("SELECT 1 FROM processed_updates WHERE update_id = :id"),
                {"id": int(update_id)},
            ).first()
        return row is not None

    def processed_memory(self, since_update_id: int = 0) -> tuple[set[int], datetime | None]:
        """The update_ids the database holds from ``since_update_id`` on, and when the newest of
        all was committed."""
        with self.db:
            ids = {
                int(row[0])
                for row in self._run(
                    text("SELECT update_id FROM processed_updates WHERE update_id >= :since"),
                    {"since": int(since_update_id)},
                )
            }
            newest = self._run(text("SELECT MAX(processed_at) FROM processed_updates")).scalar()
        try:
            return ids, (datetime.fromisoformat(str(newest)) if newest else None)
        except ValueError:  # a salvaged row of another shape: no memory to trust
            return ids, None

    def prune_processed(self, now: datetime, keep: timedelta = PROCESSED_UPDATES_KEPT) -> int:
        with self.db:
            result = self._run(
                text("DELETE FROM processed_updates WHERE processed_at < :cutoff"),
                {"cutoff": timestamp(now - keep)},
            )
        return int(result.rowcount or 0)
