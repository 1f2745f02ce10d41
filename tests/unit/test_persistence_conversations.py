"""The persistence contract through a real python-telegram-bot Application (updates built here and
handed to ``process_update``; the Bot API is the local fake): conversations across restarts —
Enum states, nested, non-blocking, ended — and the application's own data: drops, migration,
store_data flags, the periodic and the shutdown writes."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any

import pytest
from telegram.ext import (
    Application,
    BaseHandler,
    ConversationHandler,
    MessageHandler,
    filters,
)

from bot.storage import CONVERSATION
from tests.unit import persistence_backends
from tests.unit.persistence_backends import (
    Label,
    Mode,
    Number,
    Perm,
    SQLiteBackend,
    Step,
    build_app,
    eventually,
    text_update,
)

backend = persistence_backends.backend
END = ConversationHandler.END


def on(text: str, returns: object, effect: Callable[[Any], None] | None = None) -> BaseHandler:
    """A handler for the exact text ``text`` that moves the conversation to ``returns``."""

    async def callback(update: Any, context: Any) -> object:
        if effect is not None:
            effect(context)
        return returns

    return MessageHandler(filters.Regex(f"^{re.escape(text)}$"), callback)


def talk(state: object) -> ConversationHandler:
    return ConversationHandler(
        entry_points=[on("go", state)],
        states={state: [on("next", END)]},
        fallbacks=[on("cancel", END)],
        name="talk",
        persistent=True,
    )


async def session(
    backend: SQLiteBackend,
    api: Any,
    handlers: Callable[[], list[BaseHandler]],
    *texts: str,
    chat: int = 1,
    **options: Any,
) -> Application:
    """One run of the bot: a new persistence and Application over the store, some updates, a
    clean shutdown (which writes)."""
    opened = backend.open(**options)
    app = build_app(opened, api)
    app.add_handlers(handlers())
    await app.initialize()
    try:
        for text in texts:
            await app.process_update(text_update(app, chat, text))
    finally:
        await app.shutdown()
        opened.close()
    return app


async def stored(backend: SQLiteBackend, name: str) -> dict[Any, Any]:
    opened = backend.open()
    try:
        return dict(await opened.persistence.get_conversations(name))
    finally:
        opened.close()


async def accepts(backend: SQLiteBackend, api: Any, handler: BaseHandler, text: str) -> bool:
    """Would ``handler``, in a restarted bot, take ``text`` from chat 1?"""
    opened = backend.open()
    app = build_app(opened, api)
    app.add_handler(handler)
    await app.initialize()
    try:
        return bool(handler.check_update(text_update(app, 1, text)))
    finally:
        await app.shutdown()
        opened.close()


@pytest.mark.parametrize(
    "state",
    [Step.ONE, Mode.EDIT, Perm.READ | Perm.WRITE, Number(4), Label("asking"), (Step.TWO, "x")],
    ids=repr,
)
def test_a_conversation_survives_restarts_in_any_state(
    backend: SQLiteBackend, fake_api: Any, state: object
) -> None:
    async def scenario() -> None:
        await session(backend, fake_api, lambda: [talk(state)], "go")
        assert await stored(backend, "talk") == {(1, 1): state}
        assert await accepts(backend, fake_api, talk(state), "next")
        assert not await accepts(backend, fake_api, talk(state), "go")
        await session(backend, fake_api, lambda: [talk(state)], "next")  # ends it
        assert backend.rows(CONVERSATION) == []
        assert await accepts(backend, fake_api, talk(state), "go")

    asyncio.run(scenario())


def test_an_ended_conversation_leaves_no_row(backend: SQLiteBackend, fake_api: Any) -> None:
    async def scenario() -> None:
        await session(backend, fake_api, lambda: [talk(Step.ONE)], "go", "cancel")
        assert backend.rows(CONVERSATION) == []
        await session(backend, fake_api, lambda: [talk(Step.ONE)], "go")
        await session(backend, fake_api, lambda: [talk(Step.ONE)], "cancel")
        assert backend.rows(CONVERSATION) == []

    asyncio.run(scenario())


def nested() -> list[BaseHandler]:
    grand_child = ConversationHandler(
        entry_points=[on("grand", Step.ONE)],
        states={Step.ONE: [on("done", Step.END)]},
        fallbacks=[],
        name="grand_child",
        persistent=True,
        map_to_parent={Step.END: Step.TWO},
    )
    child = ConversationHandler(
        entry_points=[on("child", Step.ONE)],
        states={Step.ONE: [grand_child], Step.TWO: [on("up", Step.THREE)]},
        fallbacks=[],
        name="child",
        persistent=True,
        map_to_parent={Step.THREE: Step.TWO},
    )
    parent = ConversationHandler(
        entry_points=[on("start", Step.ONE)],
        states={Step.ONE: [child], Step.TWO: [on("finish", END)]},
        fallbacks=[],
        name="parent",
        persistent=True,
    )
    return [parent]


def test_nested_conversations_resume_at_every_level_after_restarts(
    backend: SQLiteBackend, fake_api: Any
) -> None:
    async def states() -> tuple[dict[Any, Any], ...]:
        return tuple([await stored(backend, n) for n in ("parent", "child", "grand_child")])

    async def scenario() -> None:
        one = {(1, 1): Step.ONE}
        await session(backend, fake_api, nested, "start", "child", "grand")
        assert await states() == (one, one, one)
        await session(backend, fake_api, nested, "done")  # the grandchild ends into the child
        assert await states() == (one, {(1, 1): Step.TWO}, {})
        await session(backend, fake_api, nested, "up")  # the child ends into the parent
        assert await states() == ({(1, 1): Step.TWO}, {}, {})
        await session(backend, fake_api, nested, "finish")
        assert backend.rows(CONVERSATION) == []

    asyncio.run(scenario())


class Gate:
    """A non-blocking conversation whose entry callback waits until the test opens the gate."""

    def __init__(self, result: object) -> None:
        self.opened = asyncio.Event()
        self.result = result

    def handler(self) -> ConversationHandler:
        async def entry(update: Any, context: Any) -> object:
            await self.opened.wait()
            return self.result

        return ConversationHandler(
            entry_points=[MessageHandler(filters.Regex("^go$"), entry)],
            states={Step.ONE: [on("next", END)]},
            fallbacks=[],
            name="gated",
            persistent=True,
            block=False,
        )


async def started(backend: SQLiteBackend, api: Any, gate: Gate) -> tuple[Application, Any]:
    opened = backend.open(update_interval=1000)
    app = build_app(opened, api)
    app.add_handler(gate.handler())
    await app.initialize()
    await app.start()
    await app.process_update(text_update(app, 1, "go"))
    return app, opened


async def until_stored(app: Application, backend: SQLiteBackend) -> list[Any]:
    async def written() -> list[Any]:
        await app.update_persistence()
        return backend.rows(CONVERSATION)

    deadline = asyncio.get_running_loop().time() + 20
    while not (rows := await written()):
        assert asyncio.get_running_loop().time() < deadline, "the state was never written"
        await asyncio.sleep(0.02)
    return rows


def test_a_non_blocking_state_is_written_once_resolved(
    backend: SQLiteBackend, fake_api: Any
) -> None:
    async def scenario() -> None:
        gate = Gate(Step.ONE)
        app, opened = await started(backend, fake_api, gate)
        await app.update_persistence()
        assert backend.rows(CONVERSATION) == [], "unresolved: the old state (none) is written"
        gate.opened.set()
        await until_stored(app, backend)
        await app.stop()
        await app.shutdown()
        opened.close()
        assert await stored(backend, "gated") == {(1, 1): Step.ONE}
        assert await accepts(backend, fake_api, Gate(Step.ONE).handler(), "next")

    asyncio.run(scenario())


def test_a_non_blocking_state_pending_at_stop_is_written_at_shutdown(
    backend: SQLiteBackend, fake_api: Any
) -> None:
    async def scenario() -> None:
        gate = Gate(Step.ONE)
        app, opened = await started(backend, fake_api, gate)
        stopping = asyncio.create_task(app.stop())
        gate.opened.set()
        await asyncio.wait_for(stopping, 20)
        await app.shutdown()
        opened.close()
        assert await stored(backend, "gated") == {(1, 1): Step.ONE}

    asyncio.run(scenario())


def test_a_non_blocking_end_is_stored_then_forgotten_at_the_next_start(
    backend: SQLiteBackend, fake_api: Any
) -> None:
    async def scenario() -> None:
        gate = Gate(Step.END)
        app, opened = await started(backend, fake_api, gate)
        gate.opened.set()
        await until_stored(app, backend)
        await app.stop()
        await app.shutdown()
        opened.close()
        assert await stored(backend, "gated") == {(1, 1): Step.END}
        assert await accepts(backend, fake_api, Gate(Step.ONE).handler(), "go")
        assert backend.rows(CONVERSATION) == [], "the restarted bot removed the ended state"

    asyncio.run(scenario())


def test_a_conversation_added_after_initialize_loads_its_states(
    backend: SQLiteBackend, fake_api: Any
) -> None:
    async def scenario() -> None:
        await session(backend, fake_api, lambda: [talk(Step.TWO)], "go")
        opened = backend.open()
        app = build_app(opened, fake_api)
        await app.initialize()
        late = talk(Step.TWO)
        with pytest.warns(UserWarning, match="after `Application.initialize`"):
            app.add_handler(late)
        try:
            await eventually(lambda: late.check_update(text_update(app, 1, "next")))
        finally:
            await app.shutdown()
            opened.close()

    asyncio.run(scenario())
