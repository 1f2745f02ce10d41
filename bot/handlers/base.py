"""What the handlers of every feature work with."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from telegram import CallbackQuery, InlineKeyboardMarkup, Message, Update
from telegram.ext import ContextTypes

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

    # Every message to a user goes through these three, never through the Message or
    # CallbackQuery methods directly: they are where delivery is decided (see bot.delivery).

    async def reply(
        self, message: Message, text: str, *, reply_markup: InlineKeyboardMarkup | None = None
    ) -> None:
        """Send ``text`` to the chat of ``message``."""
        await message.reply_text(text, reply_markup=reply_markup)

    async def edit(
        self,
        query: CallbackQuery,
        text: str,
        *,
        reply_markup: InlineKeyboardMarkup | None = None,
    ) -> None:
        """Replace the text (and buttons) of the message that carried ``query``'s button."""
        await query.edit_message_text(text, reply_markup=reply_markup)

    async def answer(self, query: CallbackQuery, text: str | None = None) -> None:
        """Answer a button press (Telegram shows ``text`` briefly, or just stops the spinner)."""
        await query.answer(text)

    async def in_background(self, chat_id: int, work: Callable[[], Awaitable[None]]) -> None:
        """Run slow work for ``chat_id`` (an export, a watchdog call) outside the handling of
        updates, so that no other chat waits for it; it sends its own messages when done.
        Such work writes nothing to the database."""
        await work()


H = TypeVar("H", bound=Handlers)
R = TypeVar("R")
Callback = Callable[[H, Update, Context], Awaitable[R]]
"""A handler method: ``(self, update, context)``."""
