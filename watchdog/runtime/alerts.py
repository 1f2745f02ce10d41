"""Alerts to the admins (ADMIN_IDS) as Telegram messages, sent by the watchdog itself so they
arrive even when the bot is down. Best effort: a failed alert is logged, never raised."""

from __future__ import annotations

import logging

import aiohttp

from conf.settings import Settings

log = logging.getLogger(__name__)
MAX_TEXT = 4000


class Alerter:
    def __init__(self, api_url: str, token: str, admin_ids: tuple[int, ...], timeout: float = 10.0):
        self._endpoint = f"{api_url}{token}/sendMessage"
        self.admin_ids = admin_ids
        self.timeout = timeout
        self.sent = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> Alerter | None:
        if settings.telegram_bot_token is None or not settings.admin_ids:
            return None
        return cls(
            settings.telegram_api_url,
            settings.telegram_bot_token.get_secret_value(),
            settings.admin_ids,
        )

    async def send(self, text: str) -> int:
        """Messages delivered (one per admin). The endpoint holds the token: it is never logged."""
        delivered = 0
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        try:
            async with aiohttp.ClientSession(timeout=timeout) as session:
                for chat_id in self.admin_ids:
                    payload = {
                        "chat_id": str(chat_id),
                        "text": f"ErixCast watchdog: {text}"[:MAX_TEXT],
                    }
                    try:
                        async with session.post(self._endpoint, data=payload) as answer:
                            if answer.status == 200:
                                delivered += 1
                            else:
                                log.warning("alert to %s refused: HTTP %s", chat_id, answer.status)
                    except (TimeoutError, aiohttp.ClientError) as error:
                        log.warning("alert to %s not sent: %s", chat_id, type(error).__name__)
        except Exception as error:  # never let an alert break the caller
            log.warning("alerts not sent: %s", type(error).__name__)
        self.sent += delivered
        return delivered
