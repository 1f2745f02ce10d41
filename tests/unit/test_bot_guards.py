"""The guards in front of the bot's handlers: private chats only, administrators only."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from telegram.constants import ChatType
from telegram.ext import ConversationHandler

from bot.handlers.guards import ADMINS_ONLY, NOT_HERE, admin_only, private_chat_only


class FakeMessage:
    chat_id = 7

    def __init__(self) -> None:
        self.replies: list[str] = []

    async def reply_text(self, text: str, **_: Any) -> None:
        self.replies.append(text)


def update(chat_type: str | None, *, user_id: int | None = 7, message: bool = True) -> Any:
    return SimpleNamespace(
        effective_chat=None if chat_type is None else SimpleNamespace(type=chat_type),
        effective_message=FakeMessage() if message else None,
        effective_user=None if user_id is None else SimpleNamespace(id=user_id),
    )


class Guarded:
    """Stands in for Handlers: the guards answer through ``self.reply`` (with no update
    processor around, Handlers.reply sends straight away, as here)."""

    admin_ids = frozenset({1})

    async def reply(self, message: Any, text: str, **_: Any) -> None:
        await message.reply_text(text)

    async def in_background(self, chat_id: Any, work: Any) -> None:
        await work()

    @private_chat_only()
    async def personal(self, update: Any, context: Any) -> str:
        return "ran"

    @private_chat_only(refused=ConversationHandler.END)
    async def entry_point(self, update: Any, context: Any) -> str:
        return "ran"

    @private_chat_only(needs_sender=False)
    async def anyone(self, update: Any, context: Any) -> str:
        return "ran"

    @admin_only
    async def admin(self, message: Any) -> None:
        await message.reply_text("done")


def run(method: Any, upd: Any) -> Any:
    return asyncio.run(method(upd, None))


def test_a_private_chat_runs_the_handler() -> None:
    assert run(Guarded().personal, update(ChatType.PRIVATE)) == "ran"


def test_elsewhere_the_user_is_told_why_not() -> None:
    group = update(ChatType.GROUP)
    assert run(Guarded().personal, group) is None
    assert group.effective_message.replies == [NOT_HERE]
    assert run(Guarded().entry_point, update(ChatType.SUPERGROUP)) == ConversationHandler.END


def test_without_a_message_or_sender_nothing_is_said() -> None:
    no_sender = update(ChatType.GROUP, user_id=None)
    assert run(Guarded().personal, no_sender) is None
    assert no_sender.effective_message.replies == []
    assert run(Guarded().entry_point, update(ChatType.PRIVATE, message=False)) == (
        ConversationHandler.END
    )


def test_a_handler_that_needs_no_sender_still_refuses_groups() -> None:
    no_sender = update(ChatType.GROUP, user_id=None)
    assert run(Guarded().anyone, no_sender) is None
    assert no_sender.effective_message.replies == [NOT_HERE]
    assert run(Guarded().anyone, update(ChatType.PRIVATE, user_id=None)) == "ran"


def test_admin_commands_answer_admins_only() -> None:
    admin, stranger, nobody = (
        update(None, user_id=1),
        update(None, user_id=2),
        update(None, user_id=None),
    )
    run(Guarded().admin, admin)
    run(Guarded().admin, stranger)
    run(Guarded().admin, nobody)
    assert admin.effective_message.replies == ["done"]
    assert stranger.effective_message.replies == [ADMINS_ONLY]
    assert nobody.effective_message.replies == [ADMINS_ONLY]
