"""Claiming an update (bot/claims.py) on a real PostgreSQL server and on SQLite: the second of
two transactions claiming one update waits for the first, then skips it if it committed and
takes it if it rolled back; a claim held too long is BUSY, not a wait forever."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

import bot.claims
from bot.claims import Claim, claim_update
from bot.clock import utc_now
from bot.storage import Storage, connect
from conf.database_url import parse_database_url
from conf.schema import pg_statements
from tests.pg import PostgresServer


@pytest.fixture
def pg_url(postgres: PostgresServer) -> str:
    url = parse_database_url(postgres.url(postgres.create_database())).sqlalchemy_url
    schema = connect(url)
    with schema:
        for statement in pg_statements():
            schema.executable.execute(text(statement))
    schema.close()
    return url


@pytest.fixture
def two(pg_url: str) -> Iterator[tuple[Storage, Storage]]:
    """Two instances' storages on one database (each used from one thread at a time)."""
    first, second = Storage(connect(pg_url)), Storage(connect(pg_url))
    try:
        yield first, second
    finally:
        for storage in (first, second):
            storage.rollback_batch()
            storage.db.close()


def claim_in_thread(storage: Storage, update_id: int) -> tuple[threading.Thread, list[Claim]]:
    result: list[Claim] = []

    def claim() -> None:
        result.append(claim_update(storage, update_id, utc_now()))
        if result[0] is Claim.MINE:
            storage.commit_batch([update_id], utc_now())
        else:
            storage.rollback_batch()

    thread = threading.Thread(target=claim, daemon=True)
    thread.start()
    return thread, result


def processed(storage: Storage) -> list[int]:
    with storage.db:
        rows = storage.db.executable.execute(text("SELECT update_id FROM processed_updates"))
        return sorted(int(row[0]) for row in rows)


def test_a_copy_claimed_while_the_first_is_uncommitted_waits_then_skips(two) -> None:
    first, second = two
    assert claim_update(first, 41, utc_now()) is Claim.MINE
    thread, result = claim_in_thread(second, 41)
    thread.join(1.0)
    assert thread.is_alive() and not result, "the second claim did not wait for the first"
    first.commit_batch([41], utc_now())
    thread.join(10)
    assert result == [Claim.DONE]
    assert processed(first) == [41]


def test_a_copy_is_taken_when_the_first_claim_rolls_back(two) -> None:
    first, second = two
    assert claim_update(first, 42, utc_now()) is Claim.MINE
    thread, result = claim_in_thread(second, 42)
    thread.join(1.0)
    assert thread.is_alive()
    first.rollback_batch()  # a kill -9 of the first instance ends the same way
    thread.join(10)
    assert result == [Claim.MINE]
    assert processed(first) == [42]


def test_a_claim_held_past_the_timeout_is_busy(two, monkeypatch) -> None:
    first, second = two
    monkeypatch.setattr(bot.claims, "CLAIM_LOCK_TIMEOUT", "300ms")
    assert claim_update(first, 43, utc_now()) is Claim.MINE
    assert claim_update(second, 43, utc_now()) is Claim.BUSY
    assert not second.batch_open, "a busy claim leaves no transaction open"
    first.commit_batch([43], utc_now())
    assert claim_update(second, 43, utc_now()) is Claim.DONE


def test_on_sqlite_a_committed_update_is_done_and_a_new_one_mine(tmp_path: Path) -> None:
    storage = Storage.open(tmp_path / "bot.db")
    try:
        assert claim_update(storage, 7, utc_now()) is Claim.MINE
        storage.commit_batch([7], utc_now())
        assert claim_update(storage, 7, utc_now()) is Claim.DONE
        assert claim_update(storage, 8, utc_now()) is Claim.MINE
        storage.rollback_batch()
        assert claim_update(storage, 8, utc_now()) is Claim.MINE, "a rolled-back claim is gone"
        storage.rollback_batch()
    finally:
        storage.close()
