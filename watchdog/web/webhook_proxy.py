"""Telegram's POSTs on the watchdog's public port, handed to the bot's webhook receiver.

A platform such as Render routes one port to an instance, ``PORT``, and that is the watchdog's.
With ``TELEGRAM_WEBHOOK_URL`` set, the path of that URL is forwarded here to the bot on
``WEBHOOK_HOST:WEBHOOK_PORT`` over loopback (``bot/webhook.py``), which stays the one judge of
every request: the secret token, the content type, the JSON. The proxy only keeps what is
plainly not an update away from it — other methods (405, the router's), no secret header
(401, the bot's own answer), a body over the bot's 1 MiB bound (413, counted as it is read,
decompressed) — and forwards nothing from outside but the body, ``Content-Type`` and the
secret header, untouched and never logged.

The 200 is Telegram's confirmation, and the bot sends it only after the update's commit: the
proxy waits for the bot's answer and passes its status and body back. A bot that is down
answers 502, one slower than ``FORWARD_TIMEOUT`` 503: Telegram delivers the update again. The
wait is an await on the event loop, so ``/health`` and the other endpoints are served meanwhile.
"""

from __future__ import annotations

import logging
import time

import aiohttp
from aiohttp import web

from conf.settings import Settings

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
MAX_BODY = 1024 * 1024
"""Bytes: the bot refuses more (``bot.webhook.MAX_BODY``), so the proxy refuses it first."""
FORWARD_TIMEOUT = 55.0
"""Seconds the bot may take to answer: above its own wait for a commit (50 s, then it answers
503 itself), under the minute Telegram waits before it counts the delivery failed."""
CONNECT_TIMEOUT = 5.0
CONCURRENT = 100
"""Forwards at once (Telegram opens at most 100 connections per webhook; 40 by default)."""
FAILURES_LOGGED_EVERY = 60.0
READ_CHUNK = 64 * 1024
PROXY_KEY = web.AppKey("webhook_proxy", object)


def bot_address(host: str, port: int) -> str:
    """Where the bot's receiver is reached from this machine: its own address, or loopback
    when it listens on every address."""
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class WebhookProxy:
    def __init__(self, path: str, target: str, timeout: float = FORWARD_TIMEOUT) -> None:
        self.path = path
        self.target = target
        """``http://host:port/path`` of the bot's receiver."""
        self.timeout = timeout
        self.forwarded = 0
        self.failed = 0
        self._failures_logged_at = -FAILURES_LOGGED_EVERY
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> WebhookProxy | None:
        if settings.telegram_webhook_url is None:
            return None
        path = settings.webhook_path
        address = bot_address(settings.webhook_host, settings.webhook_port)
        return cls(path, f"http://{address}{path}")

    async def open(self, app: web.Application) -> None:
        # force_close: no kept-alive connection outlives a bot restart to fail the next POST;
        # trust_env off: no HTTP_PROXY ever sees the secret header.
        connector = aiohttp.TCPConnector(limit=CONCURRENT, force_close=True)
        self._session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,
            trust_env=False,
            skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept"),
        )

    async def close(self, app: web.Application) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def handle(self, request: web.Request) -> web.Response:
        secret = request.headers.get(SECRET_HEADER)
        if secret is None:
            return _text(401, "unauthorized")
        if request.content_length is not None and request.content_length > MAX_BODY:
            return _text(413, "too large")
        body = await _bounded_body(request)
        if body is None:
            return _text(413, "too large")
        headers = {SECRET_HEADER: secret}
        if request.headers.get("Content-Type") is not None:
            headers["Content-Type"] = request.headers["Content-Type"]
        assert self._session is not None
        try:
            timeout = aiohttp.ClientTimeout(total=self.timeout, connect=CONNECT_TIMEOUT)
            async with self._session.post(
                self.target, data=body, headers=headers, timeout=timeout
            ) as answer:
                text = await answer.read()
                self.forwarded += 1
                return web.Response(
                    status=answer.status,
                    body=text,
                    content_type=answer.content_type or "text/plain",
                )
        except TimeoutError:
            self._failed(f"no answer within {self.timeout:.0f} s")
            return _text(503, "the bot did not answer in time; deliver again")
        except aiohttp.ClientError as error:
            self._failed(type(error).__name__)
            return _text(502, "the bot is not reachable; deliver again")

    def _failed(self, why: str) -> None:
        """Said once a minute with the count (a down bot must not fill the log); never a
        header, never the body."""
        self.failed += 1
        now = time.monotonic()
        if now - self._failures_logged_at >= FAILURES_LOGGED_EVERY:
            self._failures_logged_at = now
            log.warning(
                "webhook update not handed to the bot (%s); Telegram delivers it again (%d so far)",
                why,
                self.failed,
            )


async def _bounded_body(request: web.Request) -> bytes | None:
    """The body, or None past MAX_BODY (counted as decoded: a compressed bomb stops there)."""
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(READ_CHUNK):
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _text(status: int, text: str) -> web.Response:
    return web.Response(status=status, text=text)


def add_webhook_proxy(app: web.Application, settings: Settings) -> WebhookProxy | None:
    """With webhook mode on, POST on the webhook's path is forwarded to the bot; otherwise
    nothing is added. The route is the bot's own (the same path, matched the same way)."""
    proxy = WebhookProxy.from_settings(settings)
    if proxy is None:
        return None
    app[PROXY_KEY] = proxy
    app.on_startup.append(proxy.open)
    app.on_cleanup.append(proxy.close)
    app.router.add_post(proxy.path, proxy.handle)
    return proxy
