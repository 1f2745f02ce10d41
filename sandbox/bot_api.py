"""A local stand-in for the Telegram Bot API, good enough for python-telegram-bot's polling:
what ``make demo`` runs the bot against (no token, no internet), and what the tests use (as
``tests.fakes.telegram_api.FakeTelegramAPI``).

The server runs on its own event loop in a background thread, so synchronous code drives it with
plain method calls::

    with LocalBotAPI() as api:
        # start the bot with TELEGRAM_API_URL=api.base_url, TELEGRAM_BOT_TOKEN=api.token
        api.send_text(42, "/start")
        reply = api.wait_for_sent(42, contains="Hello")

Bot API methods live at ``/bot<token>/<method>`` (GET or POST; form, JSON or multipart parameters:
:mod:`sandbox.wire`); the bot's sending methods are :mod:`sandbox.bot_methods`, what was said
:mod:`sandbox.chat_log`, the updates a user makes :mod:`sandbox.user_updates`. A small JSON control
side lives at ``/_control/`` (:mod:`sandbox.control`) for a stand-in run as its own process
(``python -m sandbox --port 8081``).

Webhooks: ``setWebhook``/``deleteWebhook``/``getWebhookInfo``, and delivery by POST to the
registered URL (``api.webhook``, :mod:`sandbox.webhook`).

Failure injection: ``set_get_updates_mode`` (401, 409, 429, 502 or a hang on getUpdates) and
``fail_next(method, status)`` for the next calls of any other method.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from sandbox import control, user_updates, wire
from sandbox.background_loop import BackgroundLoop
from sandbox.bot_methods import BotMethods
from sandbox.chat_log import ChatLog
from sandbox.failures import Failures
from sandbox.webhook import WEBHOOK_CONFLICT, WebhookDelivery

MODES = ("normal", "hang", "unauthorized", "conflict", "flood", "bad_gateway")
"""How getUpdates answers: normally, never (a wedged network), 401 (a revoked token), 409 (another
poller holds the token), 429 with ``retry_after`` (see ``flood_retry_after``), or 502 (Telegram's
front end failing: a network error to python-telegram-bot)."""


def make_token(bot_id: int = 123456) -> str:
    """A token shaped like a real one, different on every call."""
    return f"{bot_id}:TEST-token-{secrets.token_hex(16)}"


class LocalBotAPI:
    """The stand-in server; ``start()``/``stop()`` or use it as a context manager."""

    def __init__(
        self,
        token: str | None = None,
        *,
        tokens: list[str] | tuple[str, ...] = (),
        host: str = "127.0.0.1",
        port: int = 0,
        bot_username: str = "erixcast_test_bot",
        bot_first_name: str = "ErixCast Test",
    ) -> None:
        self.token = token or make_token()
        self.tokens = frozenset((self.token, *tokens))
        self.host = host
        self.port = port
        self.bot_id = int(self.token.split(":", 1)[0]) if self.token[:1].isdigit() else 123456
        self.bot_user = {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": bot_first_name,
            "username": bot_username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }

        self.log = ChatLog()
        self._message_ids = itertools.count(1)
        self._bot_side = BotMethods(self.bot_user, self.log, self._message_ids, self._wake)

        # Shared between the test thread and the server thread: only touched under _lock.
        self._lock = threading.Lock()
        self._updates: list[dict[str, Any]] = []
        self._calls: list[dict[str, Any]] = []
        self._update_ids = itertools.count(1)
        self._mode = "normal"
        self._confirmed_offset = 0
        self._get_updates_calls = 0
        self._failed_get_updates = 0
        self.flood_retry_after = 1
        self._failures = Failures()
        self._routes: list[Callable[[web.Application], None]] = []
        self.webhook = WebhookDelivery(self)

        self._server_loop = BackgroundLoop("fake-telegram-api")
        self._runner: web.AppRunner | None = None
        self._wakeup: asyncio.Event | None = None  # replaced on each change; lives in the loop
        self._stopping = False

    # ----------------------------------------------------------------------------------- life
    def __enter__(self) -> LocalBotAPI:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """What the bot takes as TELEGRAM_API_URL (python-telegram-bot appends the token)."""
        return f"http://{self.host}:{self.port}/bot"

    @property
    def control_url(self) -> str:
        return f"http://{self.host}:{self.port}/_control"

    def start(self, timeout: float = 10.0) -> LocalBotAPI:
        self._server_loop.start(self._start_server, timeout)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Close the server, answering or dropping hanging requests; never blocks past timeouts."""
        if self._server_loop.started:
            self._stopping = True
        self._server_loop.stop(self._stop_server, timeout)

    async def _start_server(self) -> None:
        self._wakeup = asyncio.Event()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_api)
        control.install(app, self)
        for install in self._routes:
            install(app)
        self._runner = web.AppRunner(
            app, handle_signals=False, access_log=None, shutdown_timeout=1.0
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        await self.webhook.start()
        server = site._server
        if self.port == 0 and server is not None and server.sockets:  # type: ignore[union-attr]
            self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _stop_server(self) -> None:
        await self.webhook.stop()
        self._wake()
        if self._runner is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._runner.cleanup(), timeout=3)

    # --------------------------------------------------------------------- control from Python
    def send_text(
        self,
        user_id: int,
        text: str,
        *,
        first_name: str = "Ann",
        last_name: str | None = None,
        username: str | None = None,
        chat_id: int | None = None,
        language_code: str | None = "en",
    ) -> int:
        """Queue a message from a user (in a private chat unless ``chat_id``); the update_id."""
        update = user_updates.text_message(
            next(self._message_ids),
            int(time.time()),
            user_id,
            text,
            first_name=first_name,
            last_name=last_name,
            username=username,
            chat_id=chat_id,
            language_code=language_code,
        )
        return self.send_update(update)

    def send_update(self, update: dict[str, Any]) -> int:
        """Queue a raw update (an ``update_id`` is added when missing); returns the update_id."""
        update = dict(update)
        with self._lock:
            update.setdefault("update_id", next(self._update_ids))
            self._updates.append(update)
            self.log.user_said(update)
        self._wake_threadsafe()
        return int(update["update_id"])

    def sent(self, chat_id: int | str | None = None) -> list[dict[str, Any]]:
        """What the bot sent, oldest first (:meth:`sandbox.chat_log.ChatLog.sent`)."""
        return self.log.sent(chat_id)

    def calls(self, method: str | None = None) -> list[dict[str, Any]]:
        """Every Bot API call answered, as ``{"method", "params"}`` (getUpdates excluded)."""
        with self._lock:
            records = list(self._calls)
        return [record for record in records if method is None or record["method"] == method]

    def wait_for_sent(
        self,
        chat_id: int | str,
        contains: str | None = None,
        timeout: float = 10.0,
        after: int = 0,
    ) -> dict[str, Any]:
        """The first message sent to ``chat_id`` past the first ``after``, containing
        ``contains`` (:meth:`sandbox.chat_log.ChatLog.wait_for_sent`)."""
        return self.log.wait_for_sent(chat_id, contains, timeout, after)

    def send_message(self, user_id: int, *, first_name: str = "Ann", **content: Any) -> int:
        """Queue a message of any kind from a user in their private chat (``photo=[...]``,
        ``sticker={...}``, ``text=...``); the update_id."""
        message_id, now = next(self._message_ids), int(time.time())
        return self.send_update(
            user_updates.any_message(message_id, now, user_id, first_name, content)
        )

    def send_edit(
        self, user_id: int, message_id: int, text: str, *, first_name: str = "Ann"
    ) -> int:
        """Queue an ``edited_message`` update: the user changed message ``message_id``."""
        now = int(time.time())
        return self.send_update(
            user_updates.edited_message(now, user_id, message_id, text, first_name)
        )

    def send_callback(
        self, user_id: int, data: str, message: dict[str, Any], *, first_name: str = "Ann"
    ) -> int:
        """Queue a press of an inline button with ``data`` under ``message`` (a ``result`` the
        bot got back from sendMessage)."""
        query_id = f"cbq-{secrets.token_hex(6)}"
        return self.send_update(
            user_updates.callback_query(query_id, user_id, data, message, first_name)
        )

    def fail_next(
        self,
        method: str,
        status: int = 429,
        times: int = 1,
        retry_after: int = 1,
        *,
        chat_id: int | None = None,
    ) -> None:
        """The next ``times`` calls of ``method`` (e.g. ``sendMessage``) fail with ``status``
        (429 carries ``retry_after``); they are not recorded as sent. With ``chat_id``, only
        the calls for that chat (Telegram's flood limits are per chat too)."""
        self._failures.queue(method, status, times, retry_after, chat_id)

    def failures_left(self, method: str, *, chat_id: int | None = None) -> int:
        """How many of the failures ``fail_next`` queued for ``method`` (for ``chat_id``) are
        still to come."""
        return self._failures.left(method, chat_id)

    def clear_failures(self) -> None:
        """Forget every failure ``fail_next`` queued and not yet given."""
        self._failures.clear()

    @property
    def failed_get_updates(self) -> int:
        """How many getUpdates calls were answered with an error by the failing modes."""
        with self._lock:
            return self._failed_get_updates

    def set_get_updates_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        with self._lock:
            self._mode = mode
        self._wake_threadsafe()

    @property
    def get_updates_mode(self) -> str:
        return self._mode

    @property
    def get_updates_calls(self) -> int:
        """How many getUpdates calls got an answer (successful or 401)."""
        with self._lock:
            return self._get_updates_calls

    @property
    def confirmed_offset(self) -> int:
        """The highest ``offset`` the bot sent: every update below it is confirmed and dropped."""
        with self._lock:
            return self._confirmed_offset

    @property
    def pending_updates(self) -> int:
        with self._lock:
            return len(self._updates)

    def conversation(self, chat_id: int | str, after: int = 0) -> list[dict[str, Any]]:
        """The chat as Telegram would show it (:meth:`sandbox.chat_log.ChatLog.conversation`)."""
        return self.log.conversation(chat_id, after)

    def message(self, chat_id: int | str, message_id: int) -> dict[str, Any] | None:
        """The newest message the bot sent to ``chat_id`` with ``message_id`` (for a button)."""
        return self.log.message(chat_id, message_id)

    def document(self, chat_id: int | str, message_id: int) -> tuple[str, bytes] | None:
        """The file the bot sent as ``message_id`` to ``chat_id``: (name, content)."""
        return self.log.document(chat_id, message_id)

    async def changed(self, timeout: float) -> None:
        """Wait (in the server's loop) for the next change: an update queued or a message sent;
        at most ``timeout`` seconds."""
        wakeup = self._wakeup
        assert wakeup is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wakeup.wait(), timeout)

    def add_routes(self, install: Callable[[web.Application], None]) -> None:
        """More pages on the same server (the chat page); before ``start()``."""
        self._routes.append(install)

    # ---------------------------------------------------------------------------- internals
    def _wake_threadsafe(self) -> None:
        self._server_loop.call_soon(self._wake)

    def _wake(self) -> None:
        """Wake every waiting getUpdates (runs in the server loop)."""
        if self._wakeup is not None:
            self._wakeup.set()
        self._wakeup = asyncio.Event()

    async def _handle_api(self, request: web.Request) -> web.Response:
        if request.match_info["token"] not in self.tokens:
            return web.json_response(wire.UNAUTHORIZED, status=401)
        method = request.match_info["method"]
        params = await wire.read_params(request)
        if method.lower() == "getupdates":
            return await self._get_updates(params)
        handler = self._methods().get(method.lower())
        if handler is None:
            return web.json_response(wire.NOT_IMPLEMENTED, status=400)
        failure = self._failures.take(method, params.get("chat_id"))
        if failure is not None:
            return wire.error_response(*failure)
        try:
            result = handler(params)
        except (KeyError, ValueError, TypeError) as error:
            return wire.bad_request(error)
        with self._lock:
            self._calls.append({"method": method, "params": params})
        return wire.answer(result)

    def _methods(self) -> dict[str, Callable[[dict[str, Any]], Any]]:
        return {
            "getme": lambda params: self.bot_user,
            "deletewebhook": self.webhook.delete_webhook,
            "setwebhook": self.webhook.set_webhook,
            "getwebhookinfo": self.webhook.info,
            "setmycommands": lambda params: True,
            "answercallbackquery": lambda params: True,
            "sendmessage": self._bot_side.send_message,
            "editmessagetext": self._bot_side.edit_message_text,
            "senddocument": self._bot_side.send_document,
        }

    async def _get_updates(self, params: dict[str, Any]) -> web.Response:
        offset = int(params.get("offset") or 0)
        timeout = float(params.get("timeout") or 0)
        limit = max(1, min(100, int(params.get("limit") or 100)))
        if self.webhook.active:
            return web.json_response(WEBHOOK_CONFLICT, status=409)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        with self._lock:
            if offset > 0:
                self._confirmed_offset = max(self._confirmed_offset, offset)
                self._updates = [u for u in self._updates if u["update_id"] >= offset]
        while True:
            wakeup = self._wakeup
            assert wakeup is not None
            if self._stopping:
                return web.json_response(
                    {"ok": False, "error_code": 503, "description": "fake stopping"}, status=503
                )
            with self._lock:
                mode = self._mode
                ready = [u for u in self._updates if u["update_id"] >= offset][:limit]
                if mode == "unauthorized":
                    self._get_updates_calls += 1
                    return web.json_response(wire.UNAUTHORIZED, status=401)
                if mode in ("conflict", "flood", "bad_gateway"):
                    self._failed_get_updates += 1
                    status = {"conflict": 409, "flood": 429, "bad_gateway": 502}[mode]
                    return wire.error_response(status, self.flood_retry_after)
                if mode == "normal" and (ready or loop.time() >= deadline):
                    self._get_updates_calls += 1
                    return wire.answer(ready)
            if mode == "hang":
                await wakeup.wait()  # until a mode change, or stop()
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wakeup.wait(), max(0.0, deadline - loop.time()))
