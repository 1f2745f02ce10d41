"""The one place the bot opens its database, through ``dataset``.

Rules (see FIELD-NOTES): the schema is created up front at start-up (dataset's implicit column
creation is not safe under concurrency), every write runs inside ``with db:`` (a write outside a
transaction is never committed), and all database work happens on one thread
(:class:`DatabaseThread`). SQLite-only settings sit behind :func:`connect`, the single seam a
``DATABASE_URL`` for PostgreSQL would go through later; the SQL here is portable.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import dataset
from sqlalchemy import text

log = logging.getLogger(__name__)

T = TypeVar("T")

SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=FULL",
    "PRAGMA busy_timeout=5000",
    "PRAGMA foreign_keys=ON",
)
"""Run on every new SQLite connection."""

USER_FIELDS = ("first_name", "last_name", "username", "language_code")

_TOUCH_USER = text(
    """
    INSERT INTO users (id, first_name, last_name, username, language_code,
                       first_seen, last_seen, message_count)
    VALUES (:id, :first_name, :last_name, :username, :language_code, :now, :now, 1)
    ON CONFLICT (id) DO UPDATE SET
        first_name = excluded.first_name,
        last_name = excluded.last_name,
        username = excluded.username,
        language_code = excluded.language_code,
        last_seen = excluded.last_seen,
        message_count = users.message_count + 1
    """
)


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def connect(url: str) -> dataset.Database:
    """Open the database; the SQLite-specific settings live here and nowhere else."""
    if url.startswith("sqlite:"):
        # dataset adds journal_mode=WAL itself; asking twice is harmless and keeps the list whole.
        return dataset.connect(url, on_connect_statements=list(SQLITE_PRAGMAS))
    return dataset.connect(url, sqlite_wal_mode=False)


def timestamp(moment: datetime) -> str:
    """UTC ISO 8601 with microseconds: sorts as text, reads the same in any database."""
    if moment.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


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


class Storage:
    """The bot's tables. Synchronous: call it from one thread (see :class:`DatabaseThread`)."""

    def __init__(self, db: dataset.Database) -> None:
        self.db = db

    @classmethod
    def open(cls, url_or_path: str | Path) -> Storage:
        """Connect and create the schema."""
        url = url_or_path if isinstance(url_or_path, str) else sqlite_url(url_or_path)
        storage = cls(connect(url))
        try:
            storage.create_schema()
        except BaseException:
            storage.close()
            raise
        return storage

    def create_schema(self) -> None:
        """Create missing tables and columns. Idempotent; run once at start-up, before any
        other work. dataset commits each DDL step itself (SQLite runs DDL outside transactions
        under Python's sqlite3 anyway), so this is not wrapped in ``with db:``."""
        db = self.db
        types = db.types
        users = db.create_table(
            "users", primary_id="id", primary_type=types.bigint, primary_increment=False
        )
        for name in USER_FIELDS:
            users.create_column(name, types.text, nullable=True)
        users.create_column("first_seen", types.text, nullable=False, server_default="")
        users.create_column("last_seen", types.text, nullable=False, server_default="")
        users.create_column(
            "message_count", types.integer, nullable=False, server_default=text("0")
        )

    def touch_user(self, user: Mapping[str, Any], now: datetime) -> UserRecord:
        """Insert the user, or refresh their names and last_seen; message_count goes up by one.

        One statement (an upsert that is atomic in SQLite and PostgreSQL alike) in one transaction.
        """
        params = {name: _text_or_none(user.get(name)) for name in USER_FIELDS}
        params.update(id=int(user["id"]), now=timestamp(now))
        with self.db as tx:
            tx.query(_TOUCH_USER, **params)
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

    def close(self) -> None:
        self.db.close()


def _text_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


class DatabaseThread:
    """Runs every database call on one dedicated thread, off the event loop.

    dataset keeps a connection per thread and its schema handling is not thread-safe; one worker
    thread keeps it simple, and queued calls run in order.
    """

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="erixcast-db")

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run and wait (for start-up and shutdown, outside the event loop)."""
        return self._executor.submit(fn, *args, **kwargs).result()

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=False)
