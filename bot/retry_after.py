"""Honour Telegram's 429 ``retry_after`` for the bot's own requests (``getUpdates`` already does
in python-telegram-bot's polling loop)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from telegram.error import RetryAfter
from telegram.ext import BaseRateLimiter

log = logging.getLogger(__name__)

JSONDict = dict[str, Any]


ONE_ATTEMPT = "one-attempt"
"""``rate_limit_args`` of a call whose caller retries by itself (a delivery lane)."""


class RetryAfterLimiter(BaseRateLimiter[str]):
    """Not a rate limiter: when Telegram answers 429, wait ``retry_after`` and try again
    (unless the call says :data:`ONE_ATTEMPT`)."""

    def __init__(self, max_retries: int = 3, max_wait: float = 60.0) -> None:
        self.max_retries = max_retries
        self.max_wait = max_wait

    async def initialize(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, bool | JSONDict | list[JSONDict]]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: str | None,
    ) -> bool | JSONDict | list[JSONDict]:
        if rate_limit_args == ONE_ATTEMPT:
            return await callback(*args, **kwargs)
        attempt = 0
        while True:
            try:
                return await callback(*args, **kwargs)
            except RetryAfter as error:
                wait = retry_after_seconds(error)
                if attempt >= self.max_retries or wait > self.max_wait:
                    raise
                attempt += 1
                log.warning(
                    "Telegram asks to slow down (429) on %s: waiting %.1f s (retry %d of %d)",
                    endpoint,
                    wait,
                    attempt,
                    self.max_retries,
                )
                await asyncio.sleep(wait)


def retry_after_seconds(error: RetryAfter) -> float:
    """The wait Telegram asked for. ``RetryAfter.retry_after`` warns on every read (an int
    until python-telegram-bot switches to timedelta, PTB_TIMEDELTA): the timedelta it is made
    from is read directly, with the public attribute as the fallback."""
    value = getattr(error, "_retry_after", None)
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    raw = error.retry_after
    return raw.total_seconds() if isinstance(raw, dt.timedelta) else float(raw)
