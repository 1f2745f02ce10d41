"""Telegram's side of a webhook, for the stand-in Bot API (:class:`sandbox.bot_api.LocalBotAPI`).

``setWebhook`` (url, secret_token, allowed_updates, drop_pending_updates, max_connections),
``deleteWebhook`` and ``getWebhookInfo`` behave as Telegram's do; while a webhook is set,
``getUpdates`` answers 409. Queued updates are POSTed as JSON to the URL with the
``X-Telegram-Bot-Api-Secret-Token`` header, up to ``max_connections`` at once; an update counts
as delivered (``acknowledged``) once a POST of it is answered 2xx, and is POSTed again after any
other status, a refused connection or a timeout, with a growing delay — Telegram's at-least-once.

For several instances the registered URL stands for a load balancer: ``route(urls)`` sends each
delivery to the next of ``urls`` in turn (a retry goes to the next one), and
``route(urls, everywhere=True)`` sends every update to all of them at once, each copy retried
until answered 2xx — the same update in two instances' hands at the same time.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
import time
from typing import Any

import aiohttp

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")
WEBHOOK_CONFLICT = {
    "ok": False,
    "error_code": 409,
    "description": "Conflict: can't use getUpdates method while webhook is active; "
    "use deleteWebhook to delete the webhook first",
}


class WebhookDelivery:
    def __init__(self, api: Any) -> None:
        self.api = api
        """The :class:`sandbox.bot_api.LocalBotAPI` it belongs to (its queue and lock)."""
        self.url: str | None = None
        self.secret: str | None = None
        self.allowed_updates: list[str] | None = None
        self.max_connections = 40
        self.retry_delay = 0.1
        """Seconds before the first redelivery of an update; doubles up to ``retry_delay_max``."""
        self.retry_delay_max = 2.0
        self.timeout = 30.0
        """Seconds a POST may take before it counts as failed (and is made again)."""
        # Under api._lock:
        self._routes: list[str] = []
        self._everywhere = False
        self._acknowledged: dict[int, float] = {}
        self._attempts: list[dict[str, Any]] = []
        self._in_flight: set[int] = set()
        self._next_route = itertools.count()
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._stopping = False

    # ------------------------------------------------------------------ for tests (any thread)
    @property
    def active(self) -> bool:
        return self.url is not None

    def route(self, urls: list[str], *, everywhere: bool = False) -> None:
        """Where deliveries really go (instead of the registered URL)."""
        with self.api._lock:
            self._routes = list(urls)
            self._everywhere = everywhere
        self.api._wake_threadsafe()

    def acknowledged(self) -> dict[int, float]:
        """update_id → when a POST of it was first answered 2xx (monotonic)."""
        with self.api._lock:
            return dict(self._acknowledged)

    def attempts(self, update_id: int | None = None) -> list[dict[str, Any]]:
        """Every POST made: ``update_id``, ``url``, ``status`` (None: no answer), ``at``."""
        with self.api._lock:
            return [a for a in self._attempts if update_id in (None, a["update_id"])]

    # ------------------------------------------------------------------------- Bot API methods
    def set_webhook(self, params: dict[str, Any]) -> bool:
        url = str(params["url"])
        if not url.startswith(("https://", "http://127.", "http://localhost")):
            raise ValueError("bad webhook: HTTPS URL must be provided for webhook")
        secret = params.get("secret_token")
        if secret is not None and not _SECRET.fullmatch(str(secret)):
            raise ValueError("bad webhook: secret token contains unallowed characters")
        allowed = params.get("allowed_updates")
        with self.api._lock:
            self.url = url
            self.secret = None if secret is None else str(secret)
            self.allowed_updates = allowed if isinstance(allowed, list) else None
            self.max_connections = max(1, min(100, int(params.get("max_connections") or 40)))
            if _true(params.get("drop_pending_updates")):
                self.api._updates.clear()
        self.api._wake()
        return True

    def delete_webhook(self, params: dict[str, Any]) -> bool:
        with self.api._lock:
            self.url = None
            self.secret = None
            if _true(params.get("drop_pending_updates")):
                self.api._updates.clear()
        self.api._wake()
        return True

    def info(self, params: dict[str, Any]) -> dict[str, Any]:
        with self.api._lock:
            result: dict[str, Any] = {
                "url": self.url or "",
                "has_custom_certificate": False,
                "pending_update_count": len(self.api._updates),
            }
            if self.url is not None:
                result["max_connections"] = self.max_connections
                if self.allowed_updates is not None:
                    result["allowed_updates"] = self.allowed_updates
                failed = [a for a in self._attempts if not _ok(a["status"])]
                if failed:
                    result["last_error_date"] = int(failed[-1]["wall"])
                    result["last_error_message"] = failed[-1]["error"]
        return result

    # ------------------------------------------------------------------------------ delivering
    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        if self._session is not None:
            await self._session.close()

    async def _run(self) -> None:
        deliveries: set[asyncio.Task[None]] = set()
        try:
            while not self._stopping:
                for update in self._due():
                    task = asyncio.get_running_loop().create_task(self._deliver(update))
                    deliveries.add(task)
                    task.add_done_callback(deliveries.discard)
                await self.api.changed(0.5)
        finally:
            for task in deliveries:
                task.cancel()
            await asyncio.gather(*deliveries, return_exceptions=True)

    def _due(self) -> list[dict[str, Any]]:
        with self.api._lock:
            if self.url is None:
                return []
            room = self.max_connections - len(self._in_flight)
            due = [u for u in self.api._updates if u["update_id"] not in self._in_flight]
            due = due[: max(0, room)]
            self._in_flight.update(u["update_id"] for u in due)
            return due

    async def _deliver(self, update: dict[str, Any]) -> None:
        update_id = int(update["update_id"])
        try:
            with self.api._lock:
                routes, everywhere = list(self._routes), self._everywhere
            if everywhere and len(routes) > 1:
                await asyncio.gather(*(self._until_answered(update, url) for url in routes))
            else:
                await self._until_answered(update, None)
        finally:
            with self.api._lock:
                self._in_flight.discard(update_id)
                if update_id in self._acknowledged:
                    self.api._updates = [
                        u for u in self.api._updates if u["update_id"] != update_id
                    ]
            self.api._wake()

    async def _until_answered(self, update: dict[str, Any], fixed: str | None) -> None:
        """POST until answered 2xx: to ``fixed``, else to the next route (or the URL)."""
        delay = self.retry_delay
        while not self._stopping:
            with self.api._lock:
                if self.url is None:
                    return  # the webhook was deleted: the update waits for getUpdates
                url, secret = fixed or self.url, self.secret
                if fixed is None and self._routes:
                    url = self._routes[next(self._next_route) % len(self._routes)]
            status, error = await self._post(url, secret, update)
            with self.api._lock:
                self._attempts.append(
                    {
                        "update_id": update["update_id"],
                        "url": url,
                        "status": status,
                        "error": error,
                        "at": time.monotonic(),
                        "wall": time.time(),
                    }
                )
                if _ok(status):
                    self._acknowledged.setdefault(update["update_id"], time.monotonic())
                    return
            await asyncio.sleep(delay)
            delay = min(self.retry_delay_max, delay * 2)

    async def _post(
        self, url: str, secret: str | None, update: dict[str, Any]
    ) -> tuple[int | None, str]:
        assert self._session is not None
        headers = {SECRET_HEADER: secret} if secret is not None else {}
        try:
            async with self._session.post(
                url, json=update, headers=headers, timeout=aiohttp.ClientTimeout(self.timeout)
            ) as response:
                await response.read()
                return response.status, f"Wrong response from the webhook: {response.status}"
        except TimeoutError:
            return None, "Read timeout expired"
        except aiohttp.ClientError as error:
            return None, f"Connection failed: {type(error).__name__}"


def _ok(status: int | None) -> bool:
    return status is not None and 200 <= status < 300


def _true(value: Any) -> bool:
    return value is True or str(value).lower() in ("true", "1")
