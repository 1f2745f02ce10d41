"""The bot's client of the watchdog's admin API ignores every proxy setting: the real admin API
(served on 127.0.0.1 against a fake watchdog) asked by the real ``WatchdogClient``."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from bot.watchdog_client import WatchdogClient, WatchdogError
from conf.secret import Secret
from tests.netfakes import NO_PROXY_VARIABLES, RecordingProxy, ThreadedLoop
from tests.unit.test_web_exposure import fake_watchdog
from watchdog.web.admin import start_admin


@pytest.fixture
def proxy(monkeypatch) -> Iterator[RecordingProxy]:
    recorder = RecordingProxy()
    for name in NO_PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in recorder.environment().items():
        monkeypatch.setenv(name, value)
    try:
        yield recorder
    finally:
        recorder.close()


@pytest.fixture
def admin() -> Iterator[tuple[str, str]]:
    loop = ThreadedLoop()
    try:
        runner, endpoint = loop.run(start_admin(fake_watchdog(None)))
        loop.adopt(runner)
        yield endpoint.url, endpoint.secret
    finally:
        loop.close()


def test_the_bot_reaches_the_admin_api_directly_whatever_the_proxy(proxy, admin):
    url, secret = admin

    async def control() -> None:  # an httpx client that trusts the environment uses the proxy
        async with httpx.AsyncClient(timeout=5) as client:
            await client.get(f"{url}/status")

    with pytest.raises(httpx.HTTPError):
        asyncio.run(control())
    assert len(proxy.connections()) == 1
    proxy.forget()

    client = WatchdogClient(url, Secret(secret))
    document = asyncio.run(client.status())
    assert document["database"]["type"] == "sqlite"
    assert set(asyncio.run(client.backups())["tiers"]) == {"hourly"}
    with pytest.raises(WatchdogError, match="refused the bot's credentials"):
        asyncio.run(WatchdogClient(url, Secret("wrong")).status())
    assert proxy.connections() == []
