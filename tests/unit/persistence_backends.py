"""The stores the persistence contract suite runs against, and what its tests share.

``backend`` is parametrised by store: SQLite (a real file) and PostgreSQL (a fresh database of the
worker's real server, ``tests/pg.py``), each through our Storage and DatabaseThread. A backend is
a class with the same methods, named in ``BACKENDS``; no test changes."""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from telegram import Update
from telegram.ext import Application, ApplicationBuilder, PersistenceInput

from bot.persistence import SQLitePersistence
from bot.storage import DatabaseThread, Storage

Row = tuple[str, str, str, str]
"""(kind, name, key, value) as stored."""


class Step(int, enum.Enum):
    """python-telegram-bot's own idiom for conversation states."""

    END = -1
    ONE = 1
    TWO = 2
    THREE = 3


class Colour(enum.Enum):
    RED = "red"
    GREEN = (0, 255, 0)


class Mode(enum.StrEnum):
    EDIT = "edit"


class Level(enum.IntEnum):
    HIGH = 10


class Perm(enum.Flag):
    READ = 1
    WRITE = 2


class Number(int):
    """A plain int subclass."""


class Label(str):
    """A plain str subclass."""


class Clock:
    """The persistence's clock, moved by the test: a row's updated_at says which write it was."""

    def __init__(self) -> None:
        self.now = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now

    def tick(self) -> None:
        self.now += dt.timedelta(seconds=1)


class Opened:
    """A persistence with what it runs on."""

    def __init__(self, persistence: SQLitePersistence, close: Callable[[], None]) -> None:
        self.persistence = persistence
        self._close = close
        self.closed = False

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._close()


class SQLiteBackend:
    name = "sqlite"

    def __init__(self, request: pytest.FixtureRequest, directory: Path) -> None:
        self.path = directory / "erixcast.db"
        self.target: Path | str = self.path
        self.clock = Clock()
        self.opened: list[Opened] = []

    def open(self, **options: Any) -> Opened:
        """A new persistence over the same store, as a restarted bot would have."""
        thread = DatabaseThread()
        storage = thread.call(Storage.open, self.target)
        persistence = SQLitePersistence(storage, thread, clock=self.clock, **options)

        def close() -> None:
            thread.call(storage.close)
            thread.shutdown()

        opened = Opened(persistence, close)
        self.opened.append(opened)
        return opened

    def rows(self, kind: str | None = None) -> list[Row]:
        """What is in the store now, read from outside the persistence."""
        query = "SELECT kind, name, key, value FROM persistence"
        with sqlite3.connect(self.path) as conn:
            if kind is None:
                return list(conn.execute(query + " ORDER BY kind, name, key"))
            return list(conn.execute(query + " WHERE kind = ? ORDER BY name, key", (kind,)))

    def updated_at(self, kind: str, key: str) -> str:
        with sqlite3.connect(self.path) as conn:
            (stamp,) = conn.execute(
                "SELECT updated_at FROM persistence WHERE kind = ? AND key = ?", (kind, key)
            ).fetchone()
        return str(stamp)

    def forge(self, kind: str, name: str, key: str, value: str) -> None:
        """A row as anyone with the file could write it (the store must exist: open() first)."""
        with sqlite3.connect(self.path) as conn:
            conn.execute(
                "INSERT OR REPLACE INTO persistence (kind, name, key, value, updated_at) "
                "VALUES (?, ?, ?, ?, '2025-01-01T00:00:00+00:00')",
                (kind, name, key, value),
            )

    def close(self) -> None:
        for opened in self.opened:
            opened.close()


class PostgresBackend(SQLiteBackend):
    """The same persistence on a PostgreSQL database; read and forged through psycopg."""

    name = "postgresql"

    def __init__(self, request: pytest.FixtureRequest, directory: Path) -> None:
        super().__init__(request, directory)
        postgres = request.getfixturevalue("postgres")
        self.target = self.url = postgres.url(postgres.create_database())

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        import psycopg

        with psycopg.connect(self.url) as conn:
            cursor = conn.execute(sql, params)
            return list(cursor) if cursor.description else []

    def rows(self, kind: str | None = None) -> list[Row]:
        query = "SELECT kind, name, key, value FROM persistence"
        if kind is None:
            return [tuple(row) for row in self._query(query + " ORDER BY kind, name, key")]  # type: ignore[misc]
        found = self._query(query + " WHERE kind = %s ORDER BY name, key", (kind,))
        return [tuple(row) for row in found]  # type: ignore[misc]

    def updated_at(self, kind: str, key: str) -> str:
        ((stamp,),) = self._query(
            "SELECT updated_at FROM persistence WHERE kind = %s AND key = %s", (kind, key)
        )
        return str(stamp)

    def forge(self, kind: str, name: str, key: str, value: str) -> None:
        self._query(
            "INSERT INTO persistence (kind, name, key, value, updated_at) "
            "VALUES (%s, %s, %s, %s, '2025-01-01T00:00:00+00:00') "
            "ON CONFLICT (kind, name, key) DO UPDATE SET value = excluded.value, "
            "updated_at = excluded.updated_at",
            (kind, name, key, value),
        )


BACKENDS = {"sqlite": SQLiteBackend, "postgresql": PostgresBackend}


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SQLiteBackend]:
    store = BACKENDS[request.param](request, tmp_path)
    try:
        yield store
    finally:
        store.close()


def everything() -> PersistenceInput:
    return PersistenceInput()


def build_app(opened: Opened, api: Any) -> Application:
    """A real Application over the persistence, its Bot API the local fake (no network)."""
    return (
        ApplicationBuilder()
        .token(api.token)
        .base_url(api.base_url)
        .persistence(opened.persistence)
        .updater(None)
        .build()
    )


_update_ids = iter(range(1, 10**9))


def text_update(app: Application, chat_id: int, text: str, user_id: int | None = None) -> Update:
    user = chat_id if user_id is None else user_id
    return Update.de_json(
        {
            "update_id": next(_update_ids),
            "message": {
                "message_id": next(_update_ids),
                "date": 1_740_000_000,
                "chat": {"id": chat_id, "type": "private" if chat_id > 0 else "group"},
                "from": {"id": user, "is_bot": False, "first_name": "Ann"},
                "text": text,
            },
        },
        app.bot,
    )


async def eventually(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    """Poll ``check`` until it gives a true value; fail after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = check()
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"not reached within {timeout} s")
        await asyncio.sleep(0.02)
