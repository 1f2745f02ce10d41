"""The persistence contract through a real Application, for its user, chat and bot data: drops and
chat migration, store_data flags, initialisation from the store, the periodic writes every
``update_interval`` and the last one at shutdown, errors reported while the rest is written."""

from __future__ import annotations

import asyncio
from typing import Any

from telegram.ext import Application, MessageHandler, PersistenceInput, filters

from bot import codec
from bot.storage import BOT_DATA, CHAT_DATA, CONVERSATION, USER_DATA
from tests.unit import persistence_backends
from tests.unit.persistence_backends import SQLiteBackend, Step, build_app, eventually, text_update

backend = persistence_backends.backend


async def remember(update: Any, context: Any) -> None:
    """Writes what the message says into the user's, the chat's and the bot's data."""
    text = update.effective_message.text
    if text == "read":
        return
    context.user_data["said"] = text
    context.chat_data["last"] = text
    context.bot_data["count"] = context.bot_data.get("count", 0) + 1
    context.bot_data.pop("old", None)
    if text == "bad":
        context.user_data["bad"] = object()


async def opened_app(backend: SQLiteBackend, api: Any, **options: Any) -> tuple[Application, Any]:
    opened = backend.open(**options)
    app = build_app(opened, api)
    app.add_handler(MessageHandler(filters.TEXT, remember))
    await app.initialize()
    return app, opened


async def close(app: Application, opened: Any) -> None:
    if app.running:
        await app.stop()
    await app.shutdown()
    opened.close()


def test_drops_and_a_migration_reach_the_store(backend: SQLiteBackend, fake_api: Any) -> None:
    async def scenario() -> None:
        app, opened = await opened_app(backend, fake_api)
        await app.process_update(text_update(app, 7, "private"))
        await app.process_update(text_update(app, -100, "group", user_id=8))
        await app.update_persistence()
        assert [r[2] for r in backend.rows(USER_DATA)] == ["7", "8"]
        app.drop_user_data(7)
        app.drop_chat_data(7)
        app.migrate_chat_data(old_chat_id=-100, new_chat_id=-200)
        await app.update_persistence()
        await close(app, opened)
        assert [r[2] for r in backend.rows(USER_DATA)] == ["8"]
        assert [(r[2], r[3]) for r in backend.rows(CHAT_DATA)] == [("-200", '{"last":"group"}')]
        again, reopened = await opened_app(backend, fake_api)
        assert dict(again.chat_data) == {-200: {"last": "group"}}
        assert dict(again.user_data) == {8: {"said": "group"}}
        await close(again, reopened)

    asyncio.run(scenario())


def test_a_new_application_starts_from_the_stored_data(
    backend: SQLiteBackend, fake_api: Any
) -> None:
    async def scenario() -> None:
        first = backend.open().persistence
        await first.update_user_data(1, {"u": Step.TWO})
        await first.update_chat_data(-5, {"c": (1, 2)})
        await first.update_bot_data({"count": 41, "old": "gone at the next update"})
        app, opened = await opened_app(backend, fake_api)
        assert dict(app.user_data) == {1: {"u": Step.TWO}}
        assert dict(app.chat_data) == {-5: {"c": (1, 2)}}
        assert app.bot_data == {"count": 41, "old": "gone at the next update"}
        await app.process_update(text_update(app, 1, "hello"))
        await close(app, opened)
        assert [(r[2], r[3]) for r in backend.rows(BOT_DATA)] == [('"count"', "42")]

    asyncio.run(scenario())


def test_store_data_flags_keep_each_kind_out(backend: SQLiteBackend, fake_api: Any) -> None:
    async def scenario() -> None:
        first = backend.open().persistence
        await first.update_user_data(1, {"u": "stored"})
        await first.update_chat_data(1, {"c": "stored"})
        await first.update_bot_data({"b": "stored"})
        before = backend.rows()
        nothing = PersistenceInput(bot_data=False, chat_data=False, user_data=False)
        app, opened = await opened_app(backend, fake_api, store_data=nothing)
        assert not app.user_data and not app.chat_data and not app.bot_data
        await app.process_update(text_update(app, 1, "new"))
        await close(app, opened)
        assert backend.rows() == before
        only_chats = PersistenceInput(bot_data=False, chat_data=True, user_data=False)
        app, opened = await opened_app(backend, fake_api, store_data=only_chats)
        assert dict(app.chat_data) == {1: {"c": "stored"}} and not app.user_data
        await app.process_update(text_update(app, 1, "new"))
        await close(app, opened)
        assert [r[3] for r in backend.rows(USER_DATA)] == ['{"u":"stored"}']
        assert backend.rows(CHAT_DATA)[0][3] == '{"c":"stored","last":"new"}'
        assert backend.rows(BOT_DATA)[0][3] == '"stored"'

    asyncio.run(scenario())


def test_changes_are_written_every_update_interval(backend: SQLiteBackend, fake_api: Any) -> None:
    async def scenario() -> None:
        app, opened = await opened_app(backend, fake_api, update_interval=0.2)
        await app.start()
        try:
            await app.process_update(text_update(app, 1, "periodic"))
            await eventually(lambda: backend.rows(USER_DATA))  # no update_persistence called
        finally:
            await close(app, opened)
        assert backend.rows(USER_DATA)[0][3] == '{"said":"periodic"}'

    asyncio.run(scenario())


def test_the_shutdown_writes_what_the_interval_did_not(
    backend: SQLiteBackend, fake_api: Any
) -> None:
    async def scenario() -> None:
        app, opened = await opened_app(backend, fake_api, update_interval=1000)
        await app.start()
        await app.process_update(text_update(app, 1, "at shutdown"))
        assert backend.rows(USER_DATA) == []
        await close(app, opened)
        assert backend.rows(USER_DATA)[0][3] == '{"said":"at shutdown"}'

    asyncio.run(scenario())


def test_only_changed_data_is_rewritten(backend: SQLiteBackend, fake_api: Any) -> None:
    async def scenario() -> None:
        app, opened = await opened_app(backend, fake_api)
        await app.process_update(text_update(app, 1, "one"))
        await app.process_update(text_update(app, 2, "two"))
        await app.update_persistence()
        stamps = {key: backend.updated_at(USER_DATA, key) for key in ("1", "2")}
        backend.clock.tick()
        await app.process_update(text_update(app, 1, "read"))  # touched, not changed
        await app.update_persistence()
        assert {key: backend.updated_at(USER_DATA, key) for key in ("1", "2")} == stamps
        await app.process_update(text_update(app, 1, "changed"))
        await app.update_persistence()
        assert backend.updated_at(USER_DATA, "1") != stamps["1"]
        assert backend.updated_at(USER_DATA, "2") == stamps["2"]
        await close(app, opened)

    asyncio.run(scenario())


def test_an_unstorable_value_reaches_the_error_handler_and_the_rest_is_written(
    backend: SQLiteBackend, fake_api: Any
) -> None:
    async def scenario() -> list[BaseException]:
        errors: list[BaseException] = []

        async def on_error(update: object, context: Any) -> None:
            errors.append(context.error)

        app, opened = await opened_app(backend, fake_api)
        app.add_error_handler(on_error)
        await app.process_update(text_update(app, 1, "bad"))
        await app.update_persistence()
        await close(app, opened)
        return errors

    errors = asyncio.run(scenario())
    assert [type(error) for error in errors] == [codec.UnstorableValue]
    assert "user_data[1]['bad']" in str(errors[0])
    assert backend.rows(USER_DATA) == []
    assert backend.rows(CHAT_DATA)[0][3] == '{"last":"bad"}'
    assert backend.rows(BOT_DATA)[0][3] == "1"


def test_a_bot_with_forged_rows_starts_and_keeps_them_aside(
    backend: SQLiteBackend, fake_api: Any
) -> None:
    async def scenario() -> None:
        await backend.open().persistence.update_user_data(1, {"good": True})
        backend.forge(USER_DATA, "", "2", '{"$enum":["subprocess:Popen","x"]}')
        backend.forge(CONVERSATION, "talk", '{"$tuple":[1,1]}', '{"$int":["os:getpid",1]}')
        app, opened = await opened_app(backend, fake_api)
        assert dict(app.user_data) == {1: {"good": True}}
        assert len(opened.persistence.set_aside) == 1, "user 2 (the conversation is not asked)"
        await app.process_update(text_update(app, 1, "still works"))
        await close(app, opened)
        assert (USER_DATA, "", "2", '{"$enum":["subprocess:Popen","x"]}') in backend.rows()

    asyncio.run(scenario())
