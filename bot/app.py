"""Builds the python-telegram-bot Application, runs it, and turns failures into exit codes."""

from __future__ import annotations

import logging

from telegram import Update
from telegram.error import InvalidToken
from telegram.ext import Application, ApplicationBuilder

from bot import handlers, lifeline
from bot.heartbeat import Heartbeat, HeartbeatRequest
from bot.storage import DatabaseThread, Storage
from conf.exitcodes import EXIT_NOT_CONFIGURED, EXIT_OK
from conf.layout import DataLayout
from conf.settings import Settings

log = logging.getLogger("bot")

EXIT_FAILED = 1


class _QuietBootstrapInvalidToken(logging.Filter):
    """python-telegram-bot logs a rejected token at start-up with a long traceback; ``run`` says
    the same in one line, so that record is dropped (a 401 later, while polling, is kept)."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not (isinstance(error, InvalidToken) and "Bootstrap" in record.getMessage())


def build_application(
    settings: Settings, layout: DataLayout, storage: Storage, db_thread: DatabaseThread
) -> Application:
    assert settings.telegram_bot_token is not None
    application = (
        ApplicationBuilder()
        .token(settings.telegram_bot_token.get_secret_value())
        .base_url(settings.telegram_api_url)
        .get_updates_request(HeartbeatRequest(Heartbeat(layout.heartbeat_file)))
        .post_init(handlers.publish_commands)
        .build()
    )
    handlers.register(application, storage, db_thread)
    return application


def run(settings: Settings, layout: DataLayout) -> int:
    """Poll until SIGTERM/SIGINT; the exit status."""
    if settings.telegram_bot_token is None:
        log.error(
            "TELEGRAM_BOT_TOKEN is not set; the bot cannot start "
            "(get a token from @BotFather and set it in the environment or .env)"
        )
        return EXIT_NOT_CONFIGURED

    logging.getLogger("telegram.ext").addFilter(_QuietBootstrapInvalidToken())
    db_thread = DatabaseThread()
    try:
        storage = db_thread.call(Storage.open, layout.database)
    except Exception:
        log.exception("cannot open the database %s", layout.database)
        db_thread.shutdown()
        return EXIT_FAILED
    try:
        application = build_application(settings, layout, storage, db_thread)
        log.info(
            "bot starting: database %s, long-poll timeout %ss",
            layout.database,
            settings.bot_poll_timeout,
        )
        application.run_polling(
            timeout=settings.bot_poll_timeout,
            allowed_updates=Update.ALL_TYPES,
            stop_signals=lifeline.stop_signals(),
        )
    except InvalidToken:
        # python-telegram-bot's own message quotes the token: never show it.
        log.error(
            "Telegram rejected TELEGRAM_BOT_TOKEN (revoked or mistyped?); the bot cannot start. "
            "Check the token with @BotFather."
        )
        return EXIT_NOT_CONFIGURED
    except Exception as error:
        # The formatter redacts secrets from the message and the traceback alike.
        log.error("the bot stopped on an error: %s", type(error).__name__, exc_info=error)
        return EXIT_FAILED
    finally:
        try:
            db_thread.call(storage.close)
        finally:
            db_thread.shutdown()
    log.info("bot stopped")
    return EXIT_OK
