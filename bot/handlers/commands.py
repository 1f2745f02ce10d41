"""The commands the bot offers, and their place in Telegram's command menu."""

from __future__ import annotations

import logging

from telegram import BotCommand, BotCommandScopeChat
from telegram.error import InvalidToken, TelegramError
from telegram.ext import Application

log = logging.getLogger("bot.handlers")

COMMANDS = (
    ("start", "register and say hello"),
    ("help", "list the commands"),
    ("remember", "save a note: /remember <text>, or /remember and then the text"),
    ("notes", "list your notes, numbered"),
    ("forget", "delete a note: /forget <number>"),
    ("search", "search your messages and notes: /search <words>"),
    ("stats", "what I know about you, in numbers"),
    ("export", "everything I keep about you, as a JSON file"),
    ("deleteme", "erase everything I keep about you"),
)
ADMIN_COMMANDS = (
    ("status", "the watchdog's health summary"),
    ("backup", "take a backup now"),
    ("backups", "the newest backup of each tier"),
)


async def publish_commands(application: Application, admin_ids: tuple[int, ...] = ()) -> None:
    """Show the commands in Telegram's menu; a failure here is not worth refusing to start."""
    try:
        await application.bot.set_my_commands([BotCommand(c, d) for c, d in COMMANDS])
    except InvalidToken:
        raise
    except TelegramError as error:
        log.warning("could not publish the command list: %s", error)
        return
    for admin in admin_ids:
        try:
            await application.bot.set_my_commands(
                [BotCommand(c, d) for c, d in COMMANDS + ADMIN_COMMANDS],
                scope=BotCommandScopeChat(admin),
            )
        except InvalidToken:
            raise
        except TelegramError as error:  # e.g. the admin never talked to the bot
            log.info("could not publish the admin commands for %s: %s", admin, error)
