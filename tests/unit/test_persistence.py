"""SQLitePersistence against a real SQLite file: the BasePersistence contract, exactly."""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bot import codec
from bot.persistence import SQLitePersistence
from bot.storage import DatabaseThread, Storage

NOW = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)

EVERY_KIND: dict[Any, Any] = {
    "text": 'Zoë 🚀 "quoted" \n\x00 \' ; --',
    "int": 7_999_999_999,
    "negative": -1,
    "float": 1.5,
    "nan-free": [0.1, -2.5e300],
    "bool": True,
    "none": None,
    "list": [1, "two", [3, [4]], {"five": 5}],
    1: "an int key",
    (1, "a"): "a tuple key",
    "$dollar": "a key that looks like a tag",
    "tuple": (1, (2, 3)),
    "set": {3, 1, 2},
    "frozenset": frozenset({"a"}),
    "bytes": b"\x00\xff",
    "datetime": NOW,
    "naive": dt.datetime(2025, 1, 1, 1, 2, 3, 4),
    "date": dt.date(2025, 1, 2),
    "time": dt.time(3, 4, 5),
    "timedelta": dt.timedelta(days=1, seconds=2, microseconds=3),
    "decimal": Decimal("1.10"),
    "uuid": uuid.UUID(int=5),
    "empty": {},
    "nested": {"a": {"b": {2: [(), set()]}}},
    "lone surrogate": "\ud800x",
}


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "erixcast.db"


class Opened:
    """A persistence with its storage and database thread, closed at teardown."""

    def __init__(self, path: Path) -> None:
        self.thread = DatabaseThread()
        self.storage = self.thread.call(Storage.open, path)
        self.persistence = SQLitePersistence(self.storage, self.thread, clock=lambda: NOW)
        self.closed = False

    def run(self, coroutine: Any) -> Any:
        return asyncio.run(coroutine)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.thread.call(self.storage.close)
        self.thread.shutdown()


@pytest.fixture
def opened(db_path: Path) -> Iterator[Opened]:
    first = Opened(db_path)
    try:
        yield first
    finally:
        first.close()


def reopen(path: Path) -> Opened:
    return Opened(path)


def rows(path: Path, kind: str | None = None) -> list[tuple[str, str, str, str]]:
    with sqlite3.connect(path) as conn:
        query = "SELECT kind, name, key, value FROM persistence"
        if kind:
            return list(conn.execute(query + " WHERE kind = ? ORDER BY key", (kind,)))
        return list(conn.execute(query + " ORDER BY kind, key"))


def test_codec_round_trips_every_supported_kind() -> None:
    text = codec.dumps(EVERY_KIND)
    back = codec.loads(text)
    assert back == EVERY_KIND
    assert type(back[1]) is str and type(back["tuple"]) is tuple
    assert type(back["frozenset"]) is frozenset
    assert back["naive"].tzinfo is None and back["datetime"].tzinfo is not None
    assert codec.dumps(back) == text, "encoding is canonical"
    assert codec.loads(codec.dumps(float("nan"))) != codec.loads(codec.dumps(float("nan")))
    assert codec.loads(codec.dumps([float("inf"), float("-inf")])) == [
        float("inf"),
        float("-inf"),
    ]


@pytest.mark.parametrize(
    ("value", "where"),
    [
        ({"ok": 1, "bad": object()}, "x['bad']"),
        ({"fn": lambda: 1}, "x['fn']"),
        ([1, [2, {3: Path("/")}]], "x[1][1][3]"),
        ({("a", object()): 1}, "x (a key)"),
    ],
)
def test_unstorable_values_are_refused_naming_where(value: Any, where: str) -> None:
    with pytest.raises(codec.UnstorableValue) as raised:
        codec.dumps(value, "x")
    assert where in str(raised.value)
    assert "cannot store a value of type" in str(raised.value)


def test_cycles_are_refused() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(codec.UnstorableValue, match="nested deeper"):
        codec.dumps(loop)


def test_user_chat_and_bot_data_round_trip_exactly(opened: Opened, db_path: Path) -> None:
    p = opened.persistence

    async def write() -> None:
        await p.update_user_data(42, dict(EVERY_KIND))
        await p.update_user_data(7_999_999_999, {"big": "id"})
        await p.update_user_data(43, {})
        await p.update_chat_data(-100123, {"group": [1, 2]})
        await p.update_chat_data(42, {"private": True})
        await p.update_bot_data({"counter": 3, 5: "int key", (1, 2): {"t": (1,)}})

    opened.run(write())
    opened.close()

    again = reopen(db_path)
    try:

        async def read() -> tuple[Any, ...]:
            q = again.persistence
            return (
                await q.get_user_data(),
                await q.get_chat_data(),
                await q.get_bot_data(),
            )

        user_data, chat_data, bot_data = again.run(read())
    finally:
        again.close()
    assert user_data == {42: EVERY_KIND, 7_999_999_999: {"big": "id"}, 43: {}}
    assert all(type(key) is int for key in user_data)
    assert chat_data == {-100123: {"group": [1, 2]}, 42: {"private": True}}
    assert bot_data == {"counter": 3, 5: "int key", (1, 2): {"t": (1,)}}
    # One row per user, per chat, per bot_data key.
    assert len(rows(db_path, "user_data")) == 3
    assert len(rows(db_path, "chat_data")) == 2
    assert len(rows(db_path, "bot_data")) == 3


def test_only_changed_rows_are_written(opened: Opened, db_path: Path) -> None:
    p = opened.persistence
    writes: list[int] = []
    original = opened.storage.write_persistence

    def counting(changes: Any, now: Any) -> None:
        writes.append(len(changes))
        original(changes, now)

    opened.storage.write_persistence = counting  # type: ignore[method-assign]

    async def scenario() -> None:
        await p.update_user_data(1, {"a": 1})
        await p.update_user_data(1, {"a": 1})  # unchanged: no write
        await p.update_bot_data({"x": 1, "y": 2})
        await p.update_bot_data({"x": 1, "y": 3})  # only y
        await p.update_bot_data({"x": 1})  # y removed

    opened.run(scenario())
    assert writes == [1, 2, 1, 1]
    assert [(r[2], r[3]) for r in rows(db_path, "bot_data")] == [('"x"', "1")]


def test_drop_and_conversations(opened: Opened, db_path: Path) -> None:
    p = opened.persistence

    async def scenario() -> tuple[Any, ...]:
        await p.update_user_data(1, {"a": 1})
        await p.update_chat_data(2, {"b": 2})
        await p.drop_user_data(1)
        await p.drop_chat_data(2)
        await p.drop_user_data(999)  # unknown: fine
        await p.update_conversation("remember", (10, 20), "drafting")
        await p.update_conversation("remember", (10, 21), 3)
        await p.update_conversation("other", (10,), ("tuple", "state"))
        await p.update_conversation("remember", (10, 21), None)  # ended: row gone
        return (
            await p.get_user_data(),
            await p.get_chat_data(),
            await p.get_conversations("remember"),
            await p.get_conversations("other"),
            await p.get_conversations("none"),
        )

    users, chats, remember, other, none = opened.run(scenario())
    assert users == {} and chats == {}
    assert remember == {(10, 20): "drafting"}
    assert other == {(10,): ("tuple", "state")}
    assert none == {}
    assert len(rows(db_path, "conversation")) == 2


def test_callback_data_round_trips(opened: Opened, db_path: Path) -> None:
    p = opened.persistence
    data = (
        [("kb-1", 100.5, {"btn-a": ("any", 1)}), ("kb-2", 200.0, {"btn-b": {"x": 1}})],
        {"query-1": "kb-1"},
    )

    async def scenario() -> tuple[Any, Any, Any]:
        empty = await p.get_callback_data()
        await p.update_callback_data(data)
        await p.update_callback_data(([("kb-2", 200.0, {"btn-b": {"x": 1}})], {}))
        after = await p.get_callback_data()
        await p.update_callback_data(([], {}))
        return empty, after, await p.get_callback_data()

    empty, after, cleared = opened.run(scenario())
    assert empty is None
    assert after == ([("kb-2", 200.0, {"btn-b": {"x": 1}})], {})
    assert cleared == ([], {}), "stored-but-empty is not 'never stored'"
    assert {r[1] for r in rows(db_path, "callback_data")} == {"meta"}


def test_unstorable_value_is_an_error_at_write_time_and_loses_nothing_else(
    opened: Opened, db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    p = opened.persistence

    async def scenario() -> None:
        await p.update_user_data(1, {"ok": 1})
        with pytest.raises(codec.UnstorableValue, match=r"user_data\[1\]\['bad'\]"):
            await p.update_user_data(1, {"ok": 2, "bad": object()})
        with pytest.raises(codec.UnstorableValue, match=r"bot_data\['bad'\]"):
            await p.update_bot_data({"good": 1, "bad": object()})
        with pytest.raises(codec.UnstorableValue):
            await p.update_bot_data({"good": 1, "bad": object()})  # again: still an error

    opened.run(scenario())
    assert opened.run(p.get_user_data()) == {1: {"ok": 1}}, "the last good value stays"
    assert opened.run(p.get_bot_data()) == {"good": 1}
    reported = [r for r in caplog.records if "not stored" in r.getMessage()]
    assert len(reported) == 2, "each distinct problem is logged once"


def test_refresh_and_flush_are_harmless(opened: Opened) -> None:
    p = opened.persistence

    async def scenario() -> None:
        data: dict[str, Any] = {"a": 1}
        await p.refresh_user_data(1, data)
        await p.refresh_chat_data(1, data)
        await p.refresh_bot_data(data)
        await p.flush()
        assert data == {"a": 1}

    opened.run(scenario())
    assert p.update_interval == 1.0


def test_writes_join_an_open_batch_and_vanish_with_it(opened: Opened, db_path: Path) -> None:
    p = opened.persistence
    opened.thread.call(opened.storage.begin_batch)
    opened.run(p.update_user_data(5, {"in": "batch"}))
    assert rows(db_path, "user_data") == [], "not visible before the commit"
    opened.thread.call(opened.storage.rollback_batch)
    p.invalidate()
    assert opened.run(p.get_user_data()) == {}
    opened.thread.call(opened.storage.begin_batch)
    opened.run(p.update_user_data(5, {"in": "batch"}))
    opened.thread.call(opened.storage.commit_batch, [77], NOW)
    assert len(rows(db_path, "user_data")) == 1
    assert opened.thread.call(opened.storage.is_processed, 77)


def test_an_application_loads_and_saves_through_it(db_path: Path) -> None:
    """Through python-telegram-bot itself: what an Application writes, the next one reads."""
    from telegram.ext import ApplicationBuilder

    def build(opened: Opened) -> Any:
        return (
            ApplicationBuilder()
            .token("1:fake")
            .persistence(opened.persistence)
            .updater(None)
            .build()
        )

    first = Opened(db_path)
    try:
        app = build(first)

        async def write() -> None:
            await app.persistence.get_user_data()  # as initialize() would, without getMe
            app.user_data[42]["n"] = {1: (2, 3)}
            app.chat_data[-5]["t"] = "x"
            app.bot_data["total"] = 9
            app.mark_data_for_update_persistence(chat_ids=-5, user_ids=42)
            await app.update_persistence()
            await app.persistence.flush()

        first.run(write())
    finally:
        first.close()
    second = Opened(db_path)
    try:
        assert second.run(second.persistence.get_user_data()) == {42: {"n": {1: (2, 3)}}}
        assert second.run(second.persistence.get_chat_data()) == {-5: {"t": "x"}}
        assert second.run(second.persistence.get_bot_data()) == {"total": 9}
    finally:
        second.close()
