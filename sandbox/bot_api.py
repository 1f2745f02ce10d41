"""A local stand-in for the Telegram Bot API, good enough for python-telegram-bot's polling:
what ``make demo`` runs the bot against (no token, no internet), and what the tests use (as
``tests.fakes.telegram_api.FakeTelegramAPI``).

The server runs on its own event loop in a background thread, so synchronous code drives it with
plain method calls::

    with LocalBotAPI() as api:
        # start the bot with TELEGRAM_API_URL=api.base_url, TELEGRAM_BOT_TOKEN=api.token
        api.send_text(42, "/start")
        reply = api.wait_for_sent(42, contains="Hello")

Bot API methods live at ``/bot<token>/<method>`` (GET or POST; form, JSON or multipart parameters).
A small JSON control side lives at ``/_control/`` for a stand-in run as its own process
(``python -m sandbox --port 8081``): ``POST /_control/send_text`` {user_id, text, ...},
``POST /_control/send_update`` {update}, ``GET /_control/sent[?chat_id=]``,
``POST /_control/mode`` {mode}, ``GET /_control/state``. ``conversation(chat_id)`` is each
private chat as Telegram would show it, both sides in order (what the chat page draws).

Webhooks: ``setWebhook``/``deleteWebhook``/``getWebhookInfo``, and delivery by POST to the
registered URL (``api.webhook``, :mod:`sandbox.webhook`).

Failure injection: ``set_get_updates_mode`` (401, 409, 429, 502 or a hang on getUpdates) and
``fail_next(method, status)`` for the next calls of any other method.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from sandbox.webhook import WEBHOOK_CONFLICT, WebhookDelivery

MODES = ("normal", "hang", "unauthorized", "conflict", "flood", "bad_gateway")
"""How getUpdates answers: normally, never (a wedged network), 401 (a revoked token), 409 (another
poller holds the token), 429 with ``retry_after`` (see ``flood_retry_after``), or 502 (Telegram's
front end failing: a network error to python-telegram-bot)."""

_UNAUTHORIZED = {"ok": False, "error_code": 401, "description": "Unauthorized"}
_CONFLICT = {
    "ok": False,
    "error_code": 409,
    "description": "Conflict: terminated by other getUpdates request; make sure that only one "
    "bot instance is running",
}
_NOT_IMPLEMENTED = {
    "ok": False,
    "error_code": 400,
    "description": "Bad Request: method not implemented in fake",
}
_SENT_METHODS = frozenset({"sendMessage", "sendDocument", "editMessageText"})


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

        # Shared between the test thread and the server thread: only touched under _lock.
        self._lock = threading.Lock()
        self._sent_changed = threading.Condition(self._lock)
        self._updates: list[dict[str, Any]] = []
        self._sent: list[dict[str, Any]] = []
        self._calls: list[dict[str, Any]] = []
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(1)
        self._mode = "normal"
        self._confirmed_offset = 0
        self._get_updates_calls = 0
        self._failed_get_updates = 0
        self.flood_retry_after = 1
        self._failures: dict[str, list[tuple[int, int]]] = {}
        self._timeline: list[dict[str, Any]] = []
        """Every message in a private chat, both ways, in order (``conversation``)."""
        self._routes: list[Callable[[web.Application], None]] = []
        self.webhook = WebhookDelivery(self)

        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
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
        if self._thread is not None:
            raise RuntimeError("the fake is already running")
        started = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._start_server())
            except BaseException as error:  # reported to the caller of start()
                failure.append(error)
                started.set()
                loop.close()
                return
            started.set()
            try:
                loop.run_forever()
            finally:
                with contextlib.suppress(Exception):
                    pending = asyncio.all_tasks(loop)
                    for task in pending:
                        task.cancel()
                    loop.run_until_complete(
                        asyncio.wait_for(
                            asyncio.gather(*pending, return_exceptions=True), timeout=2
                        )
                    )
                loop.close()

        self._thread = threading.Thread(target=serve, name="fake-telegram-api", daemon=True)
        self._thread.start()
        if not started.wait(timeout):
            raise TimeoutError("the fake Telegram API did not start in time")
        if failure:
            self._thread.join(timeout)
            self._thread = None
            raise failure[0]
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Close the server, answering or dropping hanging requests; never blocks past timeouts."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        self._stopping = True
        if loop.is_running():
            future = asyncio.run_coroutine_threadsafe(self._stop_server(), loop)
            with contextlib.suppress(Exception):
                future.result(timeout)
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        self._thread = None

    async def _start_server(self) -> None:
        self._wakeup = asyncio.Event()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_api)
        app.router.add_post("/_control/send_text", self._control_send_text)
        app.router.add_post("/_control/send_update", self._control_send_update)
        app.router.add_get("/_control/sent", self._control_sent)
        app.router.add_post("/_control/mode", self._control_mode)
        app.router.add_get("/_control/state", self._control_state)
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
        user: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": first_name}
        for key, value in (
            ("last_name", last_name),
            ("username", username),
            ("language_code", language_code),
        ):
            if value is not None:
                user[key] = value
        if chat_id is None or chat_id == user_id:
            chat = {
                key: user[key] for key in ("first_name", "last_name", "username") if key in user
            }
            chat.update(id=user_id, type="private")
        else:
            chat = {"id": chat_id, "type": "group", "title": f"Group {chat_id}"}
        message: dict[str, Any] = {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": chat,
            "from": user,
            "text": text,
        }
        if text.startswith("/"):
            command = text.split(maxsplit=1)[0]
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
        return self.send_update({"message": message})

    def send_update(self, update: dict[str, Any]) -> int:
        """Queue a raw update (an ``update_id`` is added when missing); returns the update_id."""
        update = dict(update)
        with self._lock:
            update.setdefault("update_id", next(self._update_ids))
            self._updates.append(update)
            message = update.get("message")
            if isinstance(message, dict) and isinstance(message.get("chat"), dict):
                self._timeline.append(
                    {
                        "seq": len(self._timeline) + 1,
                        "chat_id": message["chat"].get("id"),
                        "from": "user",
                        "text": message.get("text") or message.get("caption") or "",
                    }
                )
        self._wake_threadsafe()
        return int(update["update_id"])

    def sent(self, chat_id: int | str | None = None) -> list[dict[str, Any]]:
        """What the bot sent (sendMessage, sendDocument, editMessageText), oldest first.

        Each record: ``method``, ``chat_id``, ``text`` (or ``caption``), ``params`` (all of them,
        JSON-decoded where possible), ``message_id``, ``result``; documents add ``document``
        (bytes, or None when sent by file_id/URL) and ``filename``.
        """
        with self._lock:
            records = list(self._sent)
        if chat_id is None:
            return records
        return [record for record in records if str(record.get("chat_id")) == str(chat_id)]

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
        """The first record for ``chat_id``, past the first ``after`` of them, containing
        ``contains`` in its text or caption; TimeoutError lists what was sent so far."""
        deadline = time.monotonic() + timeout

        def match() -> dict[str, Any] | None:
            records = [r for r in self._sent if str(r.get("chat_id")) == str(chat_id)]
            for record in records[after:]:
                body = record.get("text") or record.get("caption") or ""
                if contains is None or contains in body:
                    return record
            return None

        with self._sent_changed:
            while True:
                found = match()
                if found is not None:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    so_far = [
                        (r["method"], r.get("chat_id"), r.get("text") or r.get("caption"))
                        for r in self._sent
                    ]
                    raise TimeoutError(
                        f"nothing containing {contains!r} sent to chat {chat_id} "
                        f"within {timeout}s (after {after}); sent so far: {so_far!r}"
                    )
                self._sent_changed.wait(remaining)

    def send_message(self, user_id: int, *, first_name: str = "Ann", **content: Any) -> int:
        """Queue a message of any kind from a user in their private chat (``photo=[...]``,
        ``sticker={...}``, ``text=...``); the update_id."""
        user = {"id": user_id, "is_bot": False, "first_name": first_name}
        message = {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": {"id": user_id, "type": "private", "first_name": first_name},
            "from": user,
            **content,
        }
        return self.send_update({"message": message})

    def send_edit(
        self, user_id: int, message_id: int, text: str, *, first_name: str = "Ann"
    ) -> int:
        """Queue an ``edited_message`` update: the user changed message ``message_id``."""
        now = int(time.time())
        message = {
            "message_id": message_id,
            "date": now - 1,
            "edit_date": now,
            "chat": {"id": user_id, "type": "private", "first_name": first_name},
            "from": {"id": user_id, "is_bot": False, "first_name": first_name},
            "text": text,
        }
        return self.send_update({"edited_message": message})

    def send_callback(
        self, user_id: int, data: str, message: dict[str, Any], *, first_name: str = "Ann"
    ) -> int:
        """Queue a press of an inline button with ``data`` under ``message`` (a ``result`` the
        bot got back from sendMessage)."""
        query = {
            "id": f"cbq-{secrets.token_hex(6)}",
            "from": {"id": user_id, "is_bot": False, "first_name": first_name},
            "chat_instance": f"ci-{user_id}",
            "message": message,
            "data": data,
        }
        return self.send_update({"callback_query": query})

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
        key = method.lower() if chat_id is None else f"{method.lower()}:{chat_id}"
        with self._lock:
            self._failures.setdefault(key, []).extend([(status, retry_after)] * times)

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
        """The chat's messages past sequence number ``after``, oldest first, each ``seq``,
        ``from`` (``user`` or ``bot``), ``text``; the bot's add ``method``, ``message_id``,
        ``buttons`` (rows of {text, data}), ``filename`` and ``size`` for a document."""
        with self._lock:
            return [
                dict(entry)
                for entry in self._timeline
                if entry["seq"] > after and str(entry.get("chat_id")) == str(chat_id)
            ]

    def message(self, chat_id: int | str, message_id: int) -> dict[str, Any] | None:
        """The newest message the bot sent to ``chat_id`` with ``message_id`` (for a button)."""
        for record in reversed(self.sent(chat_id)):
            if record.get("message_id") == message_id:
                return dict(record["result"])
        return None

    def document(self, chat_id: int | str, message_id: int) -> tuple[str, bytes] | None:
        """The file the bot sent as ``message_id`` to ``chat_id``: (name, content)."""
        for record in reversed(self.sent(chat_id)):
            if record.get("message_id") == message_id and isinstance(record.get("document"), bytes):
                return str(record.get("filename") or "file"), record["document"]
        return None

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
        loop = self._loop
        if loop is not None and loop.is_running():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        """Wake every waiting getUpdates (runs in the server loop)."""
        if self._wakeup is not None:
            self._wakeup.set()
        self._wakeup = asyncio.Event()

    @staticmethod
    async def _params(request: web.Request) -> dict[str, Any]:
        params: dict[str, Any] = dict(request.query)
        if request.method == "POST" and request.can_read_body:
            if request.content_type == "application/json":
                with contextlib.suppress(ValueError):
                    body = await request.json()
                    if isinstance(body, dict):
                        params.update(body)
            else:
                form = await request.post()
                for key, value in form.items():
                    if isinstance(value, web.FileField):
                        params[key] = {"filename": value.filename, "content": value.file.read()}
                    else:
                        params[key] = value
        return {key: _decode(value) for key, value in params.items()}

    @staticmethod
    def _answer(result: Any) -> web.Response:
        return web.json_response({"ok": True, "result": result})

    async def _handle_api(self, request: web.Request) -> web.Response:
        if request.match_info["token"] not in self.tokens:
            return web.json_response(_UNAUTHORIZED, status=401)
        method = request.match_info["method"]
        params = await self._params(request)
        if method.lower() == "getupdates":
            return await self._get_updates(params)
        handler = self._methods().get(method.lower())
        if handler is None:
            return web.json_response(_NOT_IMPLEMENTED, status=400)
        with self._lock:
            for_chat = self._failures.get(f"{method.lower()}:{params.get('chat_id')}")
            queued = for_chat or self._failures.get(method.lower())
            failure = queued.pop(0) if queued else None
        if failure is not None:
            return _error_response(*failure)
        try:
            result = handler(params)
        except (KeyError, ValueError, TypeError) as error:
            description = f"Bad Request: {error}"
            return web.json_response(
                {"ok": False, "error_code": 400, "description": description}, status=400
            )
        with self._lock:
            self._calls.append({"method": method, "params": params})
        return self._answer(result)

    def _methods(self) -> dict[str, Callable[[dict[str, Any]], Any]]:
        return {
            "getme": lambda params: self.bot_user,
            "deletewebhook": self.webhook.delete_webhook,
            "setwebhook": self.webhook.set_webhook,
            "getwebhookinfo": self.webhook.info,
            "setmycommands": lambda params: True,
            "answercallbackquery": lambda params: True,
            "sendmessage": self._send_message,
            "editmessagetext": self._edit_message_text,
            "senddocument": self._send_document,
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
                    return web.json_response(_UNAUTHORIZED, status=401)
                if mode in ("conflict", "flood", "bad_gateway"):
                    self._failed_get_updates += 1
                    status = {"conflict": 409, "flood": 429, "bad_gateway": 502}[mode]
                    return _error_response(status, self.flood_retry_after)
                if mode == "normal" and (ready or loop.time() >= deadline):
                    self._get_updates_calls += 1
                    return self._answer(ready)
            if mode == "hang":
                await wakeup.wait()  # until a mode change, or stop()
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wakeup.wait(), max(0.0, deadline - loop.time()))

    def _record_sent(
        self, method: str, chat_id: Any, message: dict[str, Any], **extra: Any
    ) -> None:
        record = {
            "method": method,
            "chat_id": chat_id,
            "message_id": message.get("message_id"),
            "result": message,
            "at": time.monotonic(),
            **extra,
        }
        with self._sent_changed:
            self._sent.append(record)
            self._timeline.append(_said_by_bot(len(self._timeline) + 1, record))
            self._sent_changed.notify_all()
        self._wake()

    def _message(self, chat_id: Any, **content: Any) -> dict[str, Any]:
        chat_id = _chat_id(chat_id)
        is_user = isinstance(chat_id, int) and chat_id > 0
        chat = {"id": chat_id, "type": "private" if is_user else "group"}
        if not is_user:
            chat["title"] = f"Group {chat_id}"
        return {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": chat,
            "from": self.bot_user,
            **content,
        }

    def _send_message(self, params: dict[str, Any]) -> dict[str, Any]:
        text = str(params["text"])
        if not text:
            raise ValueError("message text is empty")
        message = self._message(params["chat_id"], text=text)
        self._record_sent("sendMessage", message["chat"]["id"], message, text=text, params=params)
        return message

    def _edit_message_text(self, params: dict[str, Any]) -> dict[str, Any] | bool:
        text = str(params["text"])
        if "inline_message_id" in params:
            self._record_sent("editMessageText", None, {}, text=text, params=params)
            return True
        message = self._message(params["chat_id"], text=text)
        message["message_id"] = int(params["message_id"])
        message["edit_date"] = int(time.time())
        self._record_sent(
            "editMessageText", message["chat"]["id"], message, text=text, params=params
        )
        return message

    def _send_document(self, params: dict[str, Any]) -> dict[str, Any]:
        document = params["document"]
        if isinstance(document, dict) and "content" in document:
            content: bytes | None = document["content"]
            filename = document["filename"]
        else:  # a file_id or URL
            content, filename = None, None
        file_id = f"fake-file-{secrets.token_hex(8)}"
        info = {"file_id": file_id, "file_unique_id": file_id[-8:]}
        if filename:
            info["file_name"] = filename
        if content is not None:
            info["file_size"] = len(content)
        caption = params.get("caption")
        message = self._message(params["chat_id"], document=info)
        if caption:
            message["caption"] = str(caption)
        self._record_sent(
            "sendDocument",
            message["chat"]["id"],
            message,
            document=content,
            filename=filename,
            caption=caption,
            params={k: v for k, v in params.items() if k != "document"},
        )
        return message

    # ------------------------------------------------------------------------- control (HTTP)
    async def _control_body(self, request: web.Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except ValueError:
            raise web.HTTPBadRequest(text="expected a JSON object") from None
        if not isinstance(body, dict):
            raise web.HTTPBadRequest(text="expected a JSON object")
        return body

    async def _control_send_text(self, request: web.Request) -> web.Response:
        body = await self._control_body(request)
        try:
            user_id, text = int(body.pop("user_id")), str(body.pop("text"))
            allowed = {"first_name", "last_name", "username", "chat_id", "language_code"}
            update_id = self.send_text(
                user_id, text, **{k: v for k, v in body.items() if k in allowed}
            )
        except (KeyError, ValueError, TypeError) as error:
            raise web.HTTPBadRequest(text=f"bad send_text: {error}") from None
        return web.json_response({"update_id": update_id})

    async def _control_send_update(self, request: web.Request) -> web.Response:
        body = await self._control_body(request)
        update = body.get("update", body)
        return web.json_response({"update_id": self.send_update(update)})

    async def _control_sent(self, request: web.Request) -> web.Response:
        chat_id = request.query.get("chat_id")
        records = self.sent(chat_id)
        # Bytes are not JSON: a document is reported by its size.
        shown = [
            {k: (len(v) if isinstance(v, bytes) else v) for k, v in r.items() if k != "params"}
            for r in records
        ]
        return web.json_response({"sent": shown})

    async def _control_mode(self, request: web.Request) -> web.Response:
        body = await self._control_body(request)
        try:
            self.set_get_updates_mode(str(body.get("mode")))
        except ValueError as error:
            raise web.HTTPBadRequest(text=str(error)) from None
        return web.json_response({"mode": self._mode})

    async def _control_state(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "mode": self._mode,
                "get_updates_calls": self.get_updates_calls,
                "confirmed_offset": self.confirmed_offset,
                "pending_updates": self.pending_updates,
                "sent": len(self.sent()),
            }
        )


def _error_response(status: int, retry_after: int = 1) -> web.Response:
    if status == 409:
        return web.json_response(_CONFLICT, status=409)
    if status == 401:
        return web.json_response(_UNAUTHORIZED, status=401)
    if status == 429:
        body = {
            "ok": False,
            "error_code": 429,
            "description": f"Too Many Requests: retry after {retry_after}",
            "parameters": {"retry_after": retry_after},
        }
        return web.json_response(body, status=429)
    if status == 502:
        return web.Response(status=502, text="Bad Gateway")
    body = {"ok": False, "error_code": status, "description": f"Error {status}"}
    return web.json_response(body, status=status)


def _said_by_bot(seq: int, record: dict[str, Any]) -> dict[str, Any]:
    """A timeline entry for what the bot sent."""
    params = record.get("params") or {}
    markup = params.get("reply_markup")
    rows = markup.get("inline_keyboard", []) if isinstance(markup, dict) else []
    buttons = [
        [
            {"text": str(b.get("text", "")), "data": str(b.get("callback_data", ""))}
            for b in row
            if isinstance(b, dict)
        ]
        for row in rows
        if isinstance(row, list)
    ]
    entry: dict[str, Any] = {
        "seq": seq,
        "chat_id": record.get("chat_id"),
        "from": "bot",
        "method": record["method"],
        "message_id": record.get("message_id"),
        "text": str(record.get("text") or record.get("caption") or ""),
        "buttons": buttons,
    }
    if record["method"] == "sendDocument":
        content = record.get("document")
        entry["filename"] = record.get("filename")
        entry["size"] = len(content) if isinstance(content, bytes) else None
    return entry


def _decode(value: Any) -> Any:
    """Form values arrive as strings; nested objects (reply_markup, entities...) as JSON."""
    if isinstance(value, str) and value[:1] in ("{", "["):
        with contextlib.suppress(ValueError):
            return json.loads(value)
    return value


def _chat_id(value: Any) -> int | str:
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if text.lstrip("-").isdigit():
        return int(text)
    if text.startswith("@"):
        return text
    raise ValueError("chat not found")
