"""The application's error handler."""

from __future__ import annotations

import logging

from telegram import Update
from telegram.error import Conflict, NetworkError, RetryAfter

from bot import codec
from bot.handlers.base import Context

log = logging.getLogger("bot.handlers")


async def on_error(update: object, context: Context) -> None:
    """Log and carry on; the formatter redacts secrets, and message contents are not logged."""
    error = context.error
    if isinstance(error, codec.UnstorableValue):
        return  # logged once, clearly, by the persistence
    if update is None and isinstance(error, Conflict | NetworkError | RetryAfter):
        # From the polling loop, which retries with backoff (or after retry_after).
        log.warning(
            "polling Telegram failed (%s: %s); retrying with backoff",
            type(error).__name__,
            error,
        )
        return
    update_id = update.update_id if isinstance(update, Update) else None
    log.error(
        "error while handling update %s: %s",
        update_id,
        type(context.error).__name__,
        exc_info=context.error,
    )
