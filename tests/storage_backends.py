"""The two databases the bot can keep its data in, for the tests that must hold on both: a SQLite
file, and a fresh database of the test worker's PostgreSQL server (``tests/pg.py``).

Use the ``storage_backend`` fixture (import it into the test module): each test runs once per
backend. :meth:`StorageBackend.rows` and :meth:`StorageBackend.execute` go through a connection
of their own, as another process would see the database.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

SQLITE = "sqlite"
POSTGRESQL = "postgresql"
BACKENDS = (SQLITE, POSTGRESQL)


@dataclass(frozen=True)
class StorageBackend:
    name: str
    target: Path | str
    """What ``Storage.open`` takes: the SQLite file, or the database's ``postgresql://`` URL."""
    env: dict[str, str] = field(default_factory=dict)
    """What the bot's process needs to use it: ``DATABASE_URL``, or nothing for the file."""

    @property
    def is_sqlite(self) -> bool:
        return self.name == SQLITE

    def rows(self, sql: str) -> list[dict[str, Any]]:
        if isinstance(self.target, Path):
            with closing(sqlite3.connect(self.target)) as conn:
                conn.row_factory = sqlite3.Row
                return [dict(row) for row in conn.execute(sql)]
        import psycopg
        from psycopg.rows import dict_row

        with psycopg.connect(self.target, row_factory=dict_row) as conn:
            return list(conn.execute(sql))

    def execute(self, sql: str) -> None:
        """A write that must not wait: fails at once if the bot still holds a lock."""
        if isinstance(self.target, Path):
            with closing(sqlite3.connect(self.target, timeout=0)) as conn, conn:
                conn.execute(sql)
            return
        import psycopg

        with psycopg.connect(self.target) as conn:
            conn.execute("SET lock_timeout = '100ms'")
            conn.execute(sql)


@pytest.fixture(params=BACKENDS)
def storage_backend(request: pytest.FixtureRequest, tmp_path: Path) -> StorageBackend:
    if request.param == SQLITE:
        return StorageBackend(SQLITE, tmp_path / "erixcast.db")
    postgres = request.getfixturevalue("postgres")  # one server per worker, started on demand
    url = postgres.url(postgres.create_database())
    return StorageBackend(POSTGRESQL, url, {"DATABASE_URL": url})
