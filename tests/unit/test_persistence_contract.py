"""The persistence contract through its own API, for every backend in ``persistence_backends``:
what python-telegram-bot's own persistence tests ask of a persistence, written for ours."""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

import pytest

from bot import codec
from bot.storage import BOT_DATA, CALLBACK_DATA, CHAT_DATA, CONVERSATION, USER_DATA
from tests.unit import persistence_backends
from tests.unit.persistence_backends import (
    Colour,
    Label,
    Level,
    Mode,
    Number,
    Perm,
    SQLiteBackend,
    Step,
)

backend = persistence_backends.backend

STATES: list[Any] = [
    Step.ONE,
    Step.END,
    Colour.RED,
    Colour.GREEN,
    Mode.EDIT,
    Level.HIGH,
    Perm.READ,
    Perm.READ | Perm.WRITE,
    Number(7),
    Label("asking"),
    ("nested", (Step.TWO, 3)),
    5,
    "text",
]
CALLBACKS = ([("kb-1", 100.5, {"b-1": ("any", Step.ONE)})], {"q-1": "kb-1"})


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


@pytest.mark.parametrize("state", STATES, ids=repr)
def test_every_conversation_state_comes_back_as_itself(backend: SQLiteBackend, state: Any) -> None:
    first = backend.open().persistence
    run(first.update_conversation("talk", (1, 2), state))
    run(first.update_conversation("talk", ("chat-as-str", 3), state))
    back = run(backend.open().persistence.get_conversations("talk"))
    assert back == {(1, 2): state, ("chat-as-str", 3): state}
    assert type(back[(1, 2)]) is type(state)
    if isinstance(state, Step | Colour | Mode | Level):
        assert back[(1, 2)] is state, "the same member, not an equal value"


def test_a_store_with_nothing_gives_empty_data(backend: SQLiteBackend) -> None:
    p = backend.open().persistence

    async def read() -> tuple[Any, ...]:
        return (
            await p.get_user_data(),
            await p.get_chat_data(),
            await p.get_bot_data(),
            await p.get_callback_data(),
            await p.get_conversations("none"),
        )

    assert run(read()) == ({}, {}, {}, None, {})


def test_a_new_persistence_over_the_same_store_sees_everything(backend: SQLiteBackend) -> None:
    first = backend.open().persistence

    async def write() -> None:
        await first.update_user_data(12345, {"t": {"nested": Step.TWO}})
        await first.update_user_data(67890, {3: "int key"})
        await first.update_chat_data(-12345, {Mode.EDIT: [1, 2]})
        await first.update_bot_data({"total": 3, Step.ONE: Label("x")})
        await first.update_callback_data(CALLBACKS)
        await first.update_conversation("a", (1, 1), Step.THREE)
        await first.update_conversation("b", (1, 1), "other conversation, same key")

    run(write())
    again = backend.open().persistence

    async def read() -> tuple[Any, ...]:
        return (
            await again.get_user_data(),
            await again.get_chat_data(),
            await again.get_bot_data(),
            await again.get_callback_data(),
            await again.get_conversations("a"),
            await again.get_conversations("b"),
        )

    users, chats, bot_data, callbacks, a, b = run(read())
    assert users == {12345: {"t": {"nested": Step.TWO}}, 67890: {3: "int key"}}
    assert chats == {-12345: {Mode.EDIT: [1, 2]}}
    assert bot_data == {"total": 3, Step.ONE: Label("x")}
    assert callbacks == CALLBACKS
    assert a == {(1, 1): Step.THREE} and b == {(1, 1): "other conversation, same key"}


def test_updates_replace_and_drops_remove(backend: SQLiteBackend) -> None:
    p = backend.open().persistence

    async def scenario() -> None:
        await p.update_user_data(1, {"a": 1})
        await p.update_user_data(1, {"a": 2})
        await p.update_user_data(2, {"b": 1})
        await p.drop_user_data(2)
        await p.drop_user_data(404)  # never stored: nothing to do, no error
        await p.update_chat_data(-1, {"c": 1})
        await p.update_chat_data(-2, {"d": 1})
        await p.drop_chat_data(-1)
        await p.update_conversation("talk", (1, 1), Step.ONE)
        await p.update_conversation("talk", (1, 1), Step.TWO)
        await p.update_conversation("talk", (2, 2), Step.ONE)
        await p.update_conversation("talk", (2, 2), None)  # ended

    run(scenario())
    assert [(r[2], r[3]) for r in backend.rows(USER_DATA)] == [("1", '{"a":2}')]
    assert [r[2] for r in backend.rows(CHAT_DATA)] == ["-2"]
    assert run(backend.open().persistence.get_conversations("talk")) == {(1, 1): Step.TWO}


def test_bot_data_and_callback_data_are_replaced_whole(backend: SQLiteBackend) -> None:
    p = backend.open().persistence

    async def scenario() -> Any:
        await p.update_bot_data({"x": 1, "y": 2})
        await p.update_bot_data({"y": 3, "z": 4})
        await p.update_callback_data(CALLBACKS)
        await p.update_callback_data(([("kb-2", 1.0, {})], {}))
        return await backend.open().persistence.get_callback_data()

    assert run(scenario()) == ([("kb-2", 1.0, {})], {})
    assert run(backend.open().persistence.get_bot_data()) == {"y": 3, "z": 4}


def test_a_drop_on_a_fresh_persistence_reaches_the_store(backend: SQLiteBackend) -> None:
    """Nothing read yet (no get_*): the persistence does not assume the store empty."""
    run(backend.open().persistence.update_user_data(5, {"a": 1}))
    run(backend.open().persistence.update_bot_data({"k": 1}))
    fresh = backend.open().persistence
    run(fresh.drop_user_data(5))
    run(fresh.update_bot_data({}))
    assert backend.rows(USER_DATA) == [] and backend.rows(BOT_DATA) == []


def _fill(p: Any) -> Any:
    async def fill() -> None:
        await p.update_user_data(1, {"u": 1})
        await p.update_chat_data(2, {"c": 1})
        await p.update_conversation("talk", (1, 1), Step.ONE)
        await p.update_bot_data({"keep": 1, "gone": 2})
        await p.update_callback_data(CALLBACKS)

    return fill()


def _empty_everything(p: Any) -> Any:
    async def empty() -> None:
        await p.drop_user_data(1)
        await p.drop_chat_data(2)
        await p.update_conversation("talk", (1, 1), None)
        await p.update_bot_data({"keep": 1})
        await p.update_callback_data(([], {}))

    return empty()


def _only_what_remains(backend: SQLiteBackend) -> None:
    assert backend.rows(USER_DATA) == [] and backend.rows(CHAT_DATA) == []
    assert backend.rows(CONVERSATION) == []
    assert [r[2] for r in backend.rows(BOT_DATA)] == ['"keep"']
    assert [r[1] for r in backend.rows(CALLBACK_DATA)] == ["meta"]


def test_deletes_after_invalidate_are_not_lost(backend: SQLiteBackend) -> None:
    p = backend.open().persistence
    run(_fill(p))
    p.invalidate()
    run(_empty_everything(p))
    _only_what_remains(backend)


def test_deletes_rolled_back_are_made_again_after_invalidate(backend: SQLiteBackend) -> None:
    """What invalidate is for: a batch (the durable processor's transaction) rolled back."""
    opened = backend.open()
    p = opened.persistence
    run(_fill(p))
    p.db.call(p.storage.begin_batch)
    run(_empty_everything(p))
    p.db.call(p.storage.rollback_batch)
    assert len(backend.rows(USER_DATA)) == 1, "the deletes were rolled back"
    p.invalidate()
    run(_empty_everything(p))
    _only_what_remains(backend)
    run(_fill(p))  # and rows written, rolled back, then written again
    p.db.call(p.storage.begin_batch)
    run(p.update_user_data(1, {"u": "in the batch"}))
    p.db.call(p.storage.rollback_batch)
    p.invalidate()
    run(p.update_user_data(1, {"u": "in the batch"}))
    assert backend.rows(USER_DATA)[0][3] == '{"u":"in the batch"}'


def test_a_fenced_persistence_writes_nothing(
    backend: SQLiteBackend, caplog: pytest.LogCaptureFixture
) -> None:
    p = backend.open().persistence
    run(_fill(p))
    before = backend.rows()
    p.fence("the commit of updates [5] failed")
    with caplog.at_level(logging.WARNING):
        run(_empty_everything(p))
        run(p.update_user_data(9, {"new": 1}))
    assert backend.rows() == before
    assert p.withheld == 6
    warned = [r for r in caplog.records if "not writing" in r.getMessage()]
    assert len(warned) == 1 and "updates [5]" in warned[0].getMessage()


def test_unchanged_rows_are_not_written_again(backend: SQLiteBackend) -> None:
    p = backend.open().persistence
    run(p.update_user_data(1, {"a": 1}))
    run(p.update_conversation("talk", (1, 1), Step.ONE))
    first = backend.updated_at(USER_DATA, "1")
    backend.clock.tick()
    run(p.update_user_data(1, {"a": 1}))
    run(p.update_conversation("talk", (1, 1), Step.ONE))
    assert backend.updated_at(USER_DATA, "1") == first
    run(p.update_user_data(1, {"a": 2}))
    assert backend.updated_at(USER_DATA, "1") != first


def test_every_write_is_in_the_store_when_it_returns(backend: SQLiteBackend) -> None:
    """No write-behind buffer: flush() has nothing left to do (outside the durable batch)."""
    p = backend.open().persistence
    run(p.update_user_data(1, {"a": 1}))
    assert backend.rows(USER_DATA) == [(USER_DATA, "", "1", '{"a":1}')]
    run(p.flush())
    assert len(backend.rows(USER_DATA)) == 1


FORGED = [
    ("os:system", '{"$enum":["os:system","x"]}'),
    ("never imported", '{"$enum":["antigravity:Anything","A"]}'),
    ("not an Enum", '{"$enum":["bot.codec:UnstorableValue","A"]}'),
    ("no such member", '{"$enum":["tests.unit.persistence_backends:Step","NINE"]}'),
    ("an Enum as an int", '{"$int":["tests.unit.persistence_backends:Step",1]}'),
    ("bool", '{"$int":["builtins:bool",1]}'),
    ("dunder path", '{"$enum":["sys:modules.__class__","A"]}'),
    ("unknown tag", '{"$pickle":"gASVAA=="}'),
    ("malformed", '{"$tuple": ['),
]


@pytest.mark.parametrize(("why", "value"), FORGED, ids=[why for why, _ in FORGED])
def test_a_forged_state_is_set_aside_not_a_crash(
    backend: SQLiteBackend, why: str, value: str, caplog: pytest.LogCaptureFixture
) -> None:
    run(backend.open().persistence.update_conversation("talk", (1, 1), Step.ONE))
    backend.forge(CONVERSATION, "talk", '{"$tuple":[2,2]}', value)
    p = backend.open().persistence
    with caplog.at_level(logging.ERROR):
        assert run(p.get_conversations("talk")) == {(1, 1): Step.ONE}
    assert "antigravity" not in sys.modules, "stored data never imports"
    assert p.set_aside == {(CONVERSATION, "talk", '{"$tuple":[2,2]}')}
    assert [r for r in caplog.records if "set aside" in r.getMessage()]
    run(p.update_conversation("talk", (1, 1), Step.TWO))
    assert (CONVERSATION, "talk", '{"$tuple":[2,2]}', value) in backend.rows(), "left as it is"
    run(p.update_conversation("talk", (2, 2), Step.THREE))  # the key is used again: replaced
    assert run(backend.open().persistence.get_conversations("talk")) == {
        (1, 1): Step.TWO,
        (2, 2): Step.THREE,
    }


@pytest.mark.parametrize(
    ("kind", "name", "key", "value"),
    [
        (USER_DATA, "", '"not-an-id"', "{}"),
        (CHAT_DATA, "", "5", "[1,2]"),
        (BOT_DATA, "", '"x"', '{"$enum":["os:path","sep"]}'),
        (CALLBACK_DATA, "keyboards", '"kb"', "[1]"),
        (CALLBACK_DATA, "queries", '"q"', "7"),
        (CONVERSATION, "talk", '"not-a-tuple"', "1"),
    ],
)
def test_rows_of_the_wrong_shape_are_set_aside(
    backend: SQLiteBackend, kind: str, name: str, key: str, value: str
) -> None:
    run(_fill(backend.open().persistence))
    backend.forge(kind, name, key, value)
    p = backend.open().persistence

    async def read_all() -> tuple[Any, ...]:
        return (
            await p.get_user_data(),
            await p.get_chat_data(),
            await p.get_bot_data(),
            await p.get_callback_data(),
            await p.get_conversations("talk"),
        )

    assert run(read_all()) == (
        {1: {"u": 1}},
        {2: {"c": 1}},
        {"keep": 1, "gone": 2},
        CALLBACKS,
        {(1, 1): Step.ONE},
    )
    assert p.set_aside == {(kind, name, key)}
    run(p.update_bot_data({"keep": 1, "gone": 2}))
    run(p.update_callback_data(CALLBACKS))
    assert (kind, name, key, value) in backend.rows(), "a whole-scope write keeps it too"


def test_unstorable_values_are_refused_at_write_time(backend: SQLiteBackend) -> None:
    p = backend.open().persistence
    with pytest.raises(codec.UnstorableValue, match=r"conversation 'talk'\[\(1, 1\)\]"):
        run(p.update_conversation("talk", (1, 1), object()))
    assert backend.rows() == []
