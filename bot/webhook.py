"""Webhook mode: Telegram POSTs each update to ``TELEGRAM_WEBHOOK_URL``; the bot serves them on
``WEBHOOK_HOST:WEBHOOK_PORT`` with aiohttp (python-telegram-bot's own server needs tornado, and
answers 200 as soon as the update is queued: a kill then loses it).

Telegram delivers an update until it is answered 2xx, so the 200 is our confirmation, as the
getUpdates offset is in polling: it is sent only once the update's batch committed
(:class:`WebhookInbox` is the processor's :class:`~bot.processor.Confirmations`). Before that,
every request proves itself: the secret token (``X-Telegram-Bot-Api-Secret-Token``, compared in
constant time; 401 without it, 403 when wrong, the body never read), ``application/json``, a
bounded body, a JSON object with an ``update_id`` that python-telegram-bot can read. A copy of an
update already in hand waits for the same commit instead of being handled again; a copy in
another instance's hands is skipped by its claim (:mod:`bot.claims`).

``GET /health`` answers the load balancer: 200 while updates are taken, 503 when stopping.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import time
from collections.abc import Sequence
from typing import Any

from aiohttp import web
from telegram import Update
from telegram.error import InvalidToken, NetworkError, TelegramError
from telegram.ext import Application

from bot.heartbeat import Heartbeat
from bot.webhook_inbox import WebhookInbox
from conf.settings import WEBHOOK_HEALTH_PATH

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
MAX_BODY = 1024 * 1024
"""Bytes; a Telegram update is a few KB (a message is at most 4096 characters)."""
ANSWER_TIMEOUT = 50.0
"""Seconds a request waits for its update's commit before it is answered 503 (Telegram then
delivers it again; a commit that lands meanwhile makes that copy a skip)."""
HEARTBEAT_EVERY = 5.0
REGISTER_RETRY_MAX = 30.0
REFUSALS_LOGGED_EVERY = 60.0


class WebhookReceiver:
    """The HTTP side: checks each request and puts its update through the application."""

    def __init__(
        self,
        application: Application,
        inbox: WebhookInbox,
        *,
        secret: str,
        path: str,
        host: str,
        port: int,
        answer_timeout: float = ANSWER_TIMEOUT,
    ) -> None:
        self.application = application
        self.inbox = inbox
        self._secret = secret.encode()
        self.path = path
        self.host = host
        self.port = port
        self.answer_timeout = answer_timeout
        self.answered = 0
        self.refused = 0
        self._refusals_logged_at = -REFUSALS_LOGGED_EVERY
        self._runner: web.AppRunner | None = None
        self._accepting = False

    async def start(self) -> None:
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_post(self.path, self._handle)
        app.router.add_get(WEBHOOK_HEALTH_PATH, self._health)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        self._accepting = True
        log.info("serving the webhook on %s:%s%s", self.host, self.port, self.path)

    @property
    def accepting(self) -> bool:
        return self._accepting

    def stop_accepting(self) -> None:
        self._accepting = False

    async def close(self) -> None:
        self._accepting = False
        self.inbox.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ------------------------------------------------------------------------------ requests
    async def _health(self, request: web.Request) -> web.Response:
        ok = self._accepting and self.application.running
        return web.json_response(
            {
                "status": "ok" if ok else "stopping",
                "mode": "webhook",
                "waiting": len(self.inbox),
                "answered": self.answered,
            },
            status=200 if ok else 503,
        )

    async def _handle(self, request: web.Request) -> web.Response:
        given = request.headers.get(SECRET_HEADER)
        if given is None:
            return self._refuse(request, 401, "no secret token")
        if not hmac.compare_digest(given.encode(errors="replace"), self._secret):
            return self._refuse(request, 403, "a wrong secret token")
        if not self._accepting or self.inbox.closed:
            return _text(503, "stopping")
        if request.content_type != "application/json":
            return _text(415, "application/json only")
        if request.content_length is not None and request.content_length > MAX_BODY:
            return _text(413, "too large")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _text(413, "too large")
        update, raw, why = self._parse(body)
        if update is None or raw is None:
            log.error("refused a webhook update that cannot be read (%s)", why)
            return _text(400, why)
        return await self._take(update, raw)

    def _parse(self, body: bytes) -> tuple[Update | None, dict[str, Any] | None, str]:
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return None, None, "not JSON"
        update_id = data.get("update_id") if isinstance(data, dict) else None
        if type(update_id) is not int or update_id < 0:
            return None, None, "not an update (no update_id)"
        try:
            update = Update.de_json(data, self.application.bot)
        except Exception as error:
            return None, None, f"update {update_id}: {type(error).__name__}"
        self.application.bot.insert_callback_data(update)
        return update, data, ""

    async def _take(self, update: Update, raw: dict[str, Any]) -> web.Response:
        future, first = self.inbox.enter(update.update_id, raw)
        if first:
            await self.application.update_queue.put(update)
        try:
            done = await asyncio.wait_for(asyncio.shield(future), self.answer_timeout)
        except TimeoutError:
            log.warning("update %s not committed in %ss; Telegram will deliver it again",
                        update.update_id, self.answer_timeout)  # fmt: skip
            return _text(503, "not committed yet")
        if not done:
            return _text(503, "not handled; deliver again")
        self.answered += 1
        return _text(200, "ok")

    def _refuse(self, request: web.Request, status: int, why: str) -> web.Response:
        """Never says which part was wrong beyond missing/wrong, never echoes the header; the
        log line is said once a minute with the count, so a flood cannot fill the disk."""
        self.refused += 1
        now = time.monotonic()
        if now - self._refusals_logged_at >= REFUSALS_LOGGED_EVERY:
            self._refusals_logged_at = now
            log.warning(
                "refused a webhook request from %s with %s (%d refused so far)",
                request.remote,
                why,
                self.refused,
            )
        return _text(status, "unauthorized" if status == 401 else "forbidden")


def _text(status: int, text: str) -> web.Response:
    return web.Response(status=status, text=text)


async def register(application: Application, url: str, secret: str) -> None:
    """``setWebhook`` (every instance registers the same URL: idempotent), retried with backoff
    while Telegram cannot be reached; a refused token is raised."""
    delay = 1.0
    while True:
        try:
            await application.bot.set_webhook(
                url=url,
                secret_token=secret,
                allowed_updates=Update.ALL_TYPES,
                drop_pending_updates=False,
            )
        except InvalidToken:
            raise
        except (NetworkError, TelegramError) as error:
            log.warning("cannot register the webhook yet (%s); retrying in %.0f s", error, delay)
            await asyncio.sleep(delay)
            delay = min(REGISTER_RETRY_MAX, delay * 2)
            continue
        log.info("webhook registered with Telegram")
        return


async def beat(heartbeat: Heartbeat, receiver: WebhookReceiver) -> None:
    """The watchdog's sign of life while no getUpdates runs: the loop turns and requests are
    taken."""
    while True:
        if receiver.accepting:
            heartbeat.beat()
        await asyncio.sleep(HEARTBEAT_EVERY)


async def initialize(application: Application) -> None:
    """``Application.initialize`` (getMe), retried while Telegram cannot be reached."""
    delay = 1.0
    while True:
        try:
            await application.initialize()
            return
        except InvalidToken:
            raise
        except NetworkError:
            await asyncio.sleep(delay)
            delay = min(REGISTER_RETRY_MAX, delay * 2)


def run_webhook(
    application: Application,
    receiver: WebhookReceiver,
    heartbeat: Heartbeat,
    *,
    url: str,
    secret: str,
    stop_signals: Sequence[int],
) -> None:
    """Serve until a stop signal or ``application.stop_running()`` (both stop the loop, as in
    ``run_polling``); then stop taking requests, let the application finish and commit what it
    holds (its waiting requests are answered 200), answer the rest 503, shut down."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    for signum in stop_signals:
        loop.add_signal_handler(signum, loop.stop)
    tasks: list[asyncio.Task[None]] = []
    initialized = False
    try:
        loop.run_until_complete(initialize(application))
        initialized = True
        if application.post_init is not None:
            loop.run_until_complete(application.post_init(application))
        loop.run_until_complete(application.start())
        loop.run_until_complete(receiver.start())
        tasks.append(loop.create_task(register(application, url, secret)))
        tasks.append(loop.create_task(beat(heartbeat, receiver)))
        tasks[0].add_done_callback(_stop_on_refused_token(loop))
        loop.run_forever()
        if tasks[0].done() and not tasks[0].cancelled() and tasks[0].exception() is not None:
            raise tasks[0].exception()  # type: ignore[misc]
    finally:
        for task in tasks:
            task.cancel()
        receiver.stop_accepting()
        try:
            if application.running:
                loop.run_until_complete(application.stop())
                if application.post_stop is not None:
                    loop.run_until_complete(application.post_stop(application))
            loop.run_until_complete(receiver.close())
            if initialized:
                loop.run_until_complete(application.shutdown())
                if application.post_shutdown is not None:
                    loop.run_until_complete(application.post_shutdown(application))
        finally:
            with contextlib.suppress(Exception):
                loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.close()


def _stop_on_refused_token(loop: asyncio.AbstractEventLoop) -> Any:
    def done(task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            loop.stop()

    return done
