"""The bot's side of the watchdog's loopback admin API (``/status``, ``/backup``, ``/backups``).

The watchdog hands its child ``ERIXCAST_WATCHDOG_URL`` and a per-run ``ERIXCAST_WATCHDOG_SECRET``;
every request carries ``Authorization: Bearer <secret>``. The secret is never logged or put in an
error message (and conf/logging redacts it anyway). Failures come back as :class:`WatchdogError`
with a sentence fit to show an administrator.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx

from conf.secret import Secret

log = logging.getLogger(__name__)

STATUS_TIMEOUT = 10.0
BACKUP_TIMEOUT = 120.0
"""A manual backup runs the SQLite backup API, an integrity check and a manifest: seconds."""
CONNECT_TIMEOUT = 3.0


class WatchdogError(Exception):
    """The watchdog could not answer; ``str()`` is a sentence for the administrator."""


class WatchdogNotConfigured(WatchdogError):
    """The bot runs without a watchdog (started by hand)."""


class WatchdogClient:
    def __init__(
        self,
        url: str | None,
        secret: Secret | None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/") if url else None
        self._secret = secret
        self._transport = transport

    @property
    def configured(self) -> bool:
        return bool(self.url) and self._secret is not None

    async def status(self) -> dict[str, Any]:
        return await self._request("GET", "/status", STATUS_TIMEOUT)

    async def backup(self) -> dict[str, Any]:
        return await self._request("POST", "/backup", BACKUP_TIMEOUT)

    async def backups(self) -> dict[str, Any]:
        return await self._request("GET", "/backups", STATUS_TIMEOUT)

    async def _request(self, method: str, path: str, timeout: float) -> dict[str, Any]:
        if not self.configured:
            raise WatchdogNotConfigured(
                "this bot runs without its watchdog, so there is nothing to ask"
            )
        assert self.url is not None and self._secret is not None
        headers = {"Authorization": f"Bearer {self._secret.get_secret_value()}"}
        limits = httpx.Timeout(timeout, connect=min(CONNECT_TIMEOUT, timeout))
        try:
            async with httpx.AsyncClient(
                timeout=limits, transport=self._transport, trust_env=False
            ) as client:
                answer = await client.request(method, self.url + path, headers=headers)
        except httpx.TimeoutException:
            raise WatchdogError(
                f"the watchdog did not answer {path} within {timeout:.0f} s"
            ) from None
        except httpx.HTTPError as error:
            raise WatchdogError(
                f"cannot reach the watchdog for {path} ({type(error).__name__})"
            ) from None
        try:
            body = answer.json()
        except ValueError:
            body = None
        if answer.status_code != 200:
            detail = body.get("error") if isinstance(body, dict) else None
            if answer.status_code in (401, 403):
                detail = "the watchdog refused the bot's credentials"
            raise WatchdogError(
                f"the watchdog answered {path} with {answer.status_code}"
                + (f": {_short(str(detail))}" if detail else "")
            )
        if not isinstance(body, dict):
            raise WatchdogError(f"the watchdog's answer to {path} is not a JSON object")
        return body


def _short(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
