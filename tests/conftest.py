from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import ProcessPool
from tests.pg import PostgresServer, postgres_server
from tests.storage_backends import storage_backend  # noqa: F401 - SQLite and PostgreSQL


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[ProcessPool]:
    pool = ProcessPool(tmp_path)
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture
def fake_api():
    from tests.fakes.telegram_api import FakeTelegramAPI

    with FakeTelegramAPI() as fake:
        yield fake


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One real PostgreSQL server per test worker (``tests/pg.py``); each test makes its own
    database with ``postgres.create_database()``."""
    with postgres_server() as server:
        yield server
