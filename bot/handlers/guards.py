"""Who may run a command, and where: the checks that come before a handler's own work."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

from telegram import Message, Update
from telegram.constants import ChatType

from bot.handlers.base import Callback, Context, H, R

NOT_HERE = "Let's do that in a private chat with me: it is personal."
ADMINS_ONLY = "Sorry, that command is for the bot's administrators only."


def private_chat_only(
    *, refused: object = None, needs_sender: bool = True
) -> Callable[[Callback[H, R]], Callback[H, R | object]]:
    """Run the handler only for a message (and, when ``needs_sender``, a sender) in a private
    chat; elsewhere say why not (what it shows is personal). A refused update gets
    ``refused`` back (a conversation's entry point refuses with ``ConversationHandler.END``)."""

    def decorate(callback: Callback[H, R]) -> Callback[H, R | object]:
        @functools.wraps(callback)
        async def guarded(self: H, update: Update, context: Context) -> R | object:
            chat, message = update.effective_chat, update.effective_message
            if message is None or (needs_sender and update.effective_user is None):
                return refused
            if chat is None or chat.type != ChatType.PRIVATE:
                await self.reply(message, NOT_HERE)
                return refused
            return await callback(self, update, context)

        return guarded

    return decorate


def admin_only(command: Callable[[H, Message], Awaitable[None]]) -> Callback[H, None]:
    """Run ``command(self, message)`` for the bot's administrators, in the background (each
    asks the watchdog, a backup takes seconds: no other update waits for it); tell anyone
    else no."""

    @functools.wraps(command)
    async def guarded(self: H, update: Update, context: Context) -> None:
        user, message = update.effective_user, update.effective_message
        if user is None or user.id not in self.admin_ids:
            if message is not None:
                await self.reply(message, ADMINS_ONLY)
            return
        assert message is not None
        await self.in_background(message.chat_id, functools.partial(command, self, message))

    return guarded
