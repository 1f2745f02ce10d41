"""The webhook proxy on the watchdog's public port (``watchdog.web.webhook_proxy``), in the real
public app of a real ``WatchdogService``, forwarding over real sockets to an HTTP server in the
bot's place that records what reached it: only POST on the webhook's path, the body bounded,
the secret header untouched, nothing else from outside, the bot's status and body passed back,
502 when nothing listens, 503 when the bot is slower than the proxy waits — and /health and the
token-guarded endpoints as before, served while a forward waits."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from conf.layout import DataLayout
from conf.settings import load_settings
from tests.helpers import free_port
from watchdog.runtime.service import WatchdogService
from watchdog.web.public import start_http
from watchdog.web.webhook_proxy import MAX_BODY, PROXY_KEY, WebhookProxy

pytestmark = pytest.mark.integration

SECRET = "proxy-secret_0123456789"
PATH = "/telegram/hook-5f2a"
HEADER = "X-Telegram-Bot-Api-Secret-Token"


class StandInBot:
    """An HTTP server on the bot's webhook port: records each request, answers as told by the
    body's ``answer`` (a status) after its ``wait`` (seconds)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.seen: list[dict[str, Any]] = []
        self.runner: web.AppRunner | None = None
        self.release = asyncio.Event()

    async def start(self) -> None:
        app = web.Application(client_max_size=4 * MAX_BODY)
        app.router.add_post(PATH, self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.seen.append({"headers": dict(request.headers), "body": body})
        order = json.loads(body) if body.startswith(b"{") else {}
        if order.get("wait"):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.release.wait(), order["wait"])
        return web.Response(status=order.get("answer", 200), text=f"bot says {len(body)}")

    async def stop(self) -> None:
        self.release.set()
        if self.runner is not None:
            await self.runner.cleanup()


async def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bot_port: int) -> tuple:
    port = free_port()
    for key, value in {
        "ENV_FILE": os.devnull,
        "DATA_DIR": str(tmp_path / "data"),
        "PORT": str(port),
        "TELEGRAM_WEBHOOK_URL": f"http://127.0.0.1:{port}{PATH}",
        "TELEGRAM_WEBHOOK_SECRET": SECRET,
        "WEBHOOK_HOST": "0.0.0.0",
        "WEBHOOK_PORT": str(bot_port),
        "STATS_TOKEN": "stats-token-77",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    settings = load_settings()
    layout = DataLayout.from_settings(settings)
    layout.ensure()
    service = WatchdogService(settings, layout)
    runner = await start_http(service, "127.0.0.1", port)
    return runner, f"http://127.0.0.1:{port}"


def run(coroutine: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coroutine, 120))


def test_the_proxy_forwards_only_what_the_bot_should_judge(tmp_path, monkeypatch):
    async def scenario() -> None:
        bot = StandInBot(free_port())
        await bot.start()
        runner, base = await served(tmp_path, monkeypatch, bot.port)
        try:
            async with aiohttp.ClientSession() as http:
                update = json.dumps({"update_id": 7, "answer": 200}).encode()
                outside = {
                    HEADER: SECRET,
                    "Content-Type": "application/json",
                    "X-Forwarded-For": "203.0.113.9",
                    "Cookie": "session=abc",
                    "Authorization": "Bearer stats-token-77",
                    "X-Real-IP": "203.0.113.9",
                }
                async with http.post(base + PATH, data=update, headers=outside) as answer:
                    assert answer.status == 200
                    assert await answer.text() == f"bot says {len(update)}"
                assert len(bot.seen) == 1
                got = bot.seen[0]
                assert got["body"] == update
                assert got["headers"][HEADER] == SECRET
                assert got["headers"]["Content-Type"] == "application/json"
                passed = {name.lower() for name in got["headers"]}
                assert passed <= {
                    "host",
                    "content-type",
                    "content-length",
                    "x-telegram-bot-api-secret-token",
                    "connection",
                }, passed
                # the bot's refusal comes back as it is (the bot judges the secret)
                wrong = json.dumps({"update_id": 8, "answer": 403}).encode()
                headers = {HEADER: "wrong", "Content-Type": "application/json"}
                async with http.post(base + PATH, data=wrong, headers=headers) as answer:
                    assert answer.status == 403 and len(bot.seen) == 2
                    assert bot.seen[1]["headers"][HEADER] == "wrong"
                # refused before the bot: no secret header, too large, another method
                async with http.post(base + PATH, data=update) as answer:
                    assert answer.status == 401
                big = b"{" + b" " * MAX_BODY + b"}"
                async with http.post(base + PATH, data=big, headers=outside) as answer:
                    assert answer.status == 413

                async def chunks() -> AsyncIterator[bytes]:
                    for _ in range(20):
                        yield b" " * (64 * 1024)

                async with http.post(base + PATH, data=chunks(), headers=outside) as answer:
                    assert answer.status == 413  # no Content-Length: counted as read
                bomb = gzip.compress(b" " * (4 * MAX_BODY))
                zipped = {**outside, "Content-Encoding": "gzip"}
                async with http.post(base + PATH, data=bomb, headers=zipped) as answer:
                    assert answer.status == 413  # counted decompressed
                async with http.get(base + PATH) as answer:
                    assert answer.status == 405
                assert len(bot.seen) == 2
                # the watchdog's own endpoints are as they were
                async with http.get(base + "/stats") as answer:
                    assert answer.status == 401
                async with http.post(base + "/stats", data=b"{}", headers=outside) as answer:
                    assert answer.status == 405
                async with http.get(base + "/health") as answer:
                    assert answer.status == 200
        finally:
            await runner.cleanup()
            await bot.stop()

    run(scenario())


def test_a_bot_down_is_502_a_slow_one_503_and_health_answers_meanwhile(tmp_path, monkeypatch):
    async def scenario() -> None:
        bot = StandInBot(free_port())
        runner, base = await served(tmp_path, monkeypatch, bot.port)
        proxy = runner.app[PROXY_KEY]
        assert isinstance(proxy, WebhookProxy)
        headers = {HEADER: SECRET, "Content-Type": "application/json"}
        try:
            async with aiohttp.ClientSession() as http:
                body = json.dumps({"update_id": 1}).encode()
                async with http.post(base + PATH, data=body, headers=headers) as answer:
                    assert answer.status == 502  # nothing listens on WEBHOOK_PORT
                await bot.start()
                proxy.timeout = 3.0
                slow = json.dumps({"update_id": 2, "wait": 30}).encode()
                started = time.monotonic()
                pending = asyncio.ensure_future(http.post(base + PATH, data=slow, headers=headers))
                await asyncio.sleep(0)
                while not bot.seen:
                    await asyncio.sleep(0.05)
                async with http.get(base + "/health") as answer:
                    assert answer.status == 200
                assert not pending.done(), "/health waited for the forward (or it ended early)"
                answer = await pending
                assert answer.status == 503, "a bot slower than the proxy's wait: delivered again"
                answer.release()
                assert time.monotonic() - started < 25
        finally:
            await runner.cleanup()
            await bot.stop()

    run(scenario())
