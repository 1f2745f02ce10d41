"""The one place the bot opens its database: :class:`Storage`, assembled from its parts."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from bot.storage.account import AccountStore
from bot.storage.batches import UpdateBatches
from bot.storage.outbox import OutboxStore
from bot.storage.seam import connect, sqlite_url
from bot.storage.search import SearchStore
from conf.database_url import SCHEMES, DatabaseURL, parse_database_url


class Storage(AccountStore, SearchStore, UpdateBatches, OutboxStore):
    """The bot's tables. Synchronous: call it from one thread (see
    :class:`~bot.storage.DatabaseThread`)."""

    @classmethod
    def open(cls, url_or_path: str | Path | DatabaseURL) -> Storage:
        """Connect and create the schema: a SQLite file (its path, or a ``sqlite:///`` URL) or
        a PostgreSQL server (``DATABASE_URL``'s ``postgresql://`` form)."""
        storage = cls(connect(database_url(url_or_path)))
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
        conf/schema.sql (conf/schema_pg.sql on PostgreSQL). Idempotent; run once at start-up,
        before any other work."""
        with self.db:
            self.seam.create_schema(self.db.executable)

    def lean_on_journal(self) -> None:
        """The journal now makes each batch durable first: commits stop waiting for the disk
        (see ``seam.JOURNALED_PRAGMAS``). Call on the database thread, before any batch.
        SQLite's only: on PostgreSQL the bot keeps no journal (the server is the durable point)."""
        with self.db:
            self.seam.journaled(self.db.executable)

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


def database_url(url_or_path: str | Path | DatabaseURL) -> str:
    """The SQLAlchemy URL of what :meth:`Storage.open` is given."""
    if isinstance(url_or_path, Path):
        return sqlite_url(url_or_path)
    if isinstance(url_or_path, DatabaseURL):
        return url_or_path.sqlalchemy_url
    if url_or_path.split("://", 1)[0].lower() in SCHEMES:
        return parse_database_url(url_or_path).sqlalchemy_url
    return url_or_path
