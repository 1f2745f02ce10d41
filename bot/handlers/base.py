"""What the handlers of every feature work with."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from telegram import CallbackQuery, InlineKeyboardMarkup, Message, Update
from telegram.constants import ChatType
from telegram.ext import ContextTypes

from bot.delivery import (
    ANSWER_CALLBACK_QUERY,
    EDIT_MESSAGE_TEXT,
    SEND_MESSAGE,
    Outgoing,
    current_sender,
)
from bot.journaling import BatchJournal
from bot.persistence import SQLitePersistence
from bot.storage import DatabaseThread, Storage
from bot.watchdog_client import WatchdogClient

Context = ContextTypes.DEFAULT_TYPE


def _no_watchdog() -> WatchdogClient:
    return WatchdogClient(None, None)


@dataclass(frozen=True, eq=False)
class Handlers:
    """The database (reached through its one thread), the watchdog and the persistence. Each
    feature's handlers are a subclass; their methods are python-telegram-bot callbacks."""

    storage: Storage
    db: DatabaseThread
    admin_ids: frozenset[int] = frozenset()
    watchdog: WatchdogClient = field(default_factory=_no_watchdog)
    persistence: SQLitePersistence | None = None
    journal: BatchJournal | None = None
    """Where an erasure is recorded (None while replaying: replay applies erasures itself)."""

    # Every message to a user goes through these, never through the Message or CallbackQuery
    # methods directly: while updates are handled durably, a message waits in the outbox for
    # its update's commit and is then sent in its chat's lane (bot.delivery); elsewhere (journal
    # replay, slow work already in a lane) it is sent at once.

    async def reply(
        self, message: Message, text: str, *, reply_markup: InlineKeyboardMarkup | None = None
    ) -> None:
        """Send ``text`` to the chat of ``message`` (quoting it outside private chats, as
        python-telegram-bot's ``reply_text`` does)."""
        sender = current_sender()
        if sender is None:
            await message.reply_text(text, reply_markup=reply_markup)
            return
        params: dict[str, Any] = {"chat_id": message.chat_id, "text": text}
        if message.chat.type != ChatType.PRIVATE:
            params["reply_parameters"] = {
                "message_id": message.message_id,
                "allow_sending_without_reply": True,
            }
        if message.is_topic_message and message.message_thread_id is not None:
            params["message_thread_id"] = message.message_thread_id
        if reply_markup is not None:
            params["reply_markup"] = reply_markup.to_dict()
        await sender.send(Outgoing(message.chat_id, SEND_MESSAGE, params))

    async def edit(
        self,
        query: CallbackQuery,
        text: str,
        *,
        reply_markup: InlineKeyboardMarkup | None = None,
    ) -> None:
        """Replace the text (and buttons) of the message that carried ``query``'s button."""
        sender = current_sender()
        message = query.message
        if sender is None or message is None:
            await query.edit_message_text(text, reply_markup=reply_markup)
            return
        params: dict[str, Any] = {
            "chat_id": message.chat.id,
            "message_id": message.message_id,
            "text": text,
        }
        if reply_markup is not None:
            params["reply_markup"] = reply_markup.to_dict()
        await sender.send(Outgoing(message.chat.id, EDIT_MESSAGE_TEXT, params))

    async def answer(self, query: CallbackQuery, text: str | None = None) -> None:
        """Answer a button press (Telegram shows ``text`` briefly, or just stops the spinner)."""
        sender = current_sender()
        if sender is None:
            await query.answer(text)
            return
        params: dict[str, Any] = {"callback_query_id": query.id}
        if text is not None:
            params["text"] = text
        chat_id = query.message.chat.id if query.message is not None else query.from_user.id
        await sender.send(Outgoing(chat_id, ANSWER_CALLBACK_QUERY, params))

    async def in_background(self, chat_id: int, work: Callable[[], Awaitable[None]]) -> None:
        """Run slow work for ``chat_id`` (an export, a watchdog call) outside the handling of
        updates, in the chat's lane after the messages already decided for it, so that no
        other chat waits for it; it sends its own messages as it goes (straight to the Bot API).
        Such work writes nothing to the database. Without a lane (replay) it runs here."""
        sender = current_sender()
        if sender is None:
            await work()
            return
        sender.run(chat_id, work)


H = TypeVar("H", bound=Handlers)
R = TypeVar("R")
Callback = Callable[[H, Update, Context], Awaitable[R]]
"""A handler method: ``(self, update, context)``."""
