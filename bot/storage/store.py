"""The one place the bot opens its database: :class:`Storage`, assembled from its parts."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from bot.storage.account import AccountStore
from bot.storage.batches import UpdateBatches
from bot.storage.outbox import OutboxStore
from bot.storage.schema import create_schema
from bot.storage.seam import JOURNALED_PRAGMAS, connect, sqlite_url
from bot.storage.search import SearchStore


class Storage(AccountStore, SearchStore, UpdateBatches, OutboxStore):
    """The bot's tables. Synchronous: call it from one thread (see
    :class:`~bot.storage.DatabaseThread`)."""

    @classmethod
    def open(cls, url_or_path: str | Path) -> Storage:
        """Connect and create the schema."""
        url = url_or_path if isinstance(url_or_path, str) else sqlite_url(url_or_path)
        storage = cls(connect(url))
        try:
            storage.create_schema()
            if isinstance(url_or_path, Path):
                storage.watch_file(url_or_path)
        except BaseException:
            storage.close()
            raise
        return storage

    def create_schema(self) -> None:
        """Create missing tables, indexes, search indexes and their triggers from
        conf/schema.sql. Idempotent; run once at start-up, before any other work."""
        if not self.is_sqlite:
            raise NotImplementedError(
                "conf/schema.sql is SQLite's; a server database needs its own schema first"
            )
        with self.db:
            create_schema(self.db.executable)

    def lean_on_journal(self) -> None:
        """The journal now makes each batch durable first: commits stop waiting for the disk
        (see ``seam.JOURNALED_PRAGMAS``). Call on the database thread, before any batch."""
        if self.is_sqlite:
            with self.db:
                for pragma in JOURNALED_PRAGMAS:
                    self._run(text(pragma))

    def tables(self) -> list[str]:
        return sorted(self.db.tables)

    def count_rows(self) -> dict[str, int]:
        with self.db:
            return {
                table: int(self._run(text(f"SELECT COUNT(*) FROM {table}")).scalar_one())
                for table in ("users", "chats", "messages", "notes", "persistence")
            }

    def close(self) -> None:
        if self._batch_open:
            self.rollback_batch()
        self.db.close()
