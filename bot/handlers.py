"""What the bot answers. Handlers reach the database through the storage given to ``register``."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from telegram import BotCommand, Update
from telegram.error import InvalidToken, TelegramError
from telegram.ext import Application, CommandHandler, ContextTypes, MessageHandler, filters

from bot.storage import DatabaseThread, Storage

log = logging.getLogger(__name__)

COMMANDS = (
    ("start", "register and say hello"),
    ("help", "list the commands"),
)
TRACKING_GROUP = -1
"""Runs before the command handlers (group 0), for every message."""


class Handlers:
    def __init__(self, storage: Storage, db_thread: DatabaseThread) -> None:
        self.storage = storage
        self.db = db_thread

    async def track(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Every new message from a user touches their row (last_seen, message_count + 1)."""
        user = update.effective_user
        if user is None or user.is_bot:
            return
        fields = {
            "id": user.id,
            "first_name": user.first_name,
            "last_name": user.last_name,
            "username": user.username,
            "language_code": user.language_code,
        }
        await self.db.run(self.storage.touch_user, fields, datetime.now(UTC))

    async def start(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        user, message = update.effective_user, update.effective_message
        if user is None or message is None:
            return
        record = await self.db.run(self.storage.get_user, user.id)
        name = user.first_name or "there"
        if record is None or record.is_new:
            text = f"Hello, {name}! Nice to meet you. Send /help to see what I can do."
        else:
            times = record.message_count
            text = f"Welcome back, {name}! I have seen you {times} time{'s' * (times != 1)}."
        await message.reply_text(text)

    async def help(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        if update.effective_message is None:
            return
        lines = ["Here is what I understand:"]
        lines += [f"/{command} – {description}" for command, description in COMMANDS]
        await update.effective_message.reply_text("\n".join(lines))

    async def unknown(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        if message is None or not message.text:
            return
        command, _, addressee = message.text.split(maxsplit=1)[0].partition("@")
        if addressee and addressee.lower() != (context.bot.username or "").lower():
            return  # a command for another bot in the same group
        command = command[:40]
        await message.reply_text(f"Sorry, I don't know {command}. Send /help to see what I can do.")

    async def error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Log and carry on; the formatter redacts secrets, and message contents are not logged."""
        update_id = update.update_id if isinstance(update, Update) else None
        log.error(
            "error while handling update %s: %s",
            update_id,
            type(context.error).__name__,
            exc_info=context.error,
        )


def register(application: Application, storage: Storage, db_thread: DatabaseThread) -> None:
    handlers = Handlers(storage, db_thread)
    application.add_handler(
        MessageHandler(filters.UpdateType.MESSAGE, handlers.track), group=TRACKING_GROUP
    )
    new_messages = filters.UpdateType.MESSAGE  # an edited "/start" is not asked twice
    application.add_handler(CommandHandler("start", handlers.start, filters=new_messages))
    application.add_handler(CommandHandler("help", handlers.help, filters=new_messages))
    application.add_handler(MessageHandler(filters.COMMAND & new_messages, handlers.unknown))
    application.add_error_handler(handlers.error)


async def publish_commands(application: Application) -> None:
    """Show the commands in Telegram's menu; a failure here is not worth refusing to start."""
    try:
        await application.bot.set_my_commands([BotCommand(c, d) for c, d in COMMANDS])
    except InvalidToken:
        raise
    except TelegramError as error:
        log.warning("could not publish the command list: %s", error)
