"""Heartbeat pings (``HEARTBEAT_URL``): a GET after each scheduled backup, so a service such as
healthchecks.io or Cronitor tells the operator when the watchdog goes silent — a watchdog that
is down, wedged or cut off cannot raise an alert of its own.

The convention is healthchecks.io's: the URL itself for success, ``<url>/fail`` for a failure.
Each ping is bounded (``timeout``) and runs in the background (``Events.ping``): a slow or
unreachable monitor never delays a backup. The URL usually holds the check's secret id: it is
never logged (a failure is logged by its kind only) and is redacted like every secret.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from conf.settings import Settings

log = logging.getLogger(__name__)
PING_TIMEOUT = 10.0


def ping_url(base: str, ok: bool) -> str:
    """Where a ping goes: ``base`` on success, ``base`` with ``/fail`` appended to its path on
    failure (a query string stays a query string)."""
    if ok:
        return base
    parts = urlsplit(base)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/fail"))


class HeartbeatPinger:
    def __init__(self, url: str, timeout: float = PING_TIMEOUT) -> None:
        self._url = url
        self.timeout = timeout
        self.sent = 0
        self.failed = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> HeartbeatPinger | None:
        url = settings.heartbeat_url
        return cls(url.get_secret_value()) if url is not None else None

    async def ping(self, ok: bool) -> bool:
        """One GET; True when the monitor answered 2xx. Never raises."""
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.get(ping_url(self._url, ok)) as answer,
            ):
                delivered = 200 <= answer.status < 300
                if not delivered:
                    log.warning("heartbeat ping refused: HTTP %s", answer.status)
        except Exception as error:  # a ping must never break its caller
            log.warning("heartbeat ping not sent: %s", type(error).__name__)
            delivered = False
        if delivered:
            self.sent += 1
        else:
            self.failed += 1
        return delivered
