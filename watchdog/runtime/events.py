"""Events and alerts: what happened, in the log, in /health's recent events, and — for what
an admin must know — as a Telegram message sent by the watchdog itself, so it arrives even when
the bot is down; and the heartbeat pings (``runtime.pings``). Alerts and pings are best effort:
a failed one is logged, never raised."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine

import aiohttp

from conf.settings import Settings
from watchdog.rules.state import WatchdogState
from watchdog.runtime.pings import HeartbeatPinger

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


class Events:
    """Records events against the one clock; sends alerts in the background, so an unreachable
    Telegram never keeps the bot held or the data lock taken."""

    def __init__(
        self,
        state: WatchdogState,
        now: Callable[[], float],
        alerter: Alerter | None,
        pinger: HeartbeatPinger | None = None,
    ) -> None:
        self.state = state
        self._now = now
        self.alerter = alerter
        self.pinger = pinger
        self._background: set[asyncio.Task[object]] = set()

    def record(self, kind: str, message: str, level: int = logging.INFO) -> None:
        log.log(level, message)
        self.note(kind, message)

    def note(self, kind: str, message: str) -> None:
        """An event for /health only (already logged by whoever did the work)."""
        self.state.record(self._now(), kind, message)

    def alert(self, text: str) -> None:
        if self.alerter is None:
            return
        self._in_background(self.alerter.send(text))

    def ping(self, ok: bool) -> None:
        """The heartbeat ping after a scheduled backup (``HEARTBEAT_URL``), in the background."""
        if self.pinger is not None:
            self._in_background(self.pinger.ping(ok))

    def _in_background(self, work: Coroutine[object, object, object]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
