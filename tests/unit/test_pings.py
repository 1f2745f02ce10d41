"""HEARTBEAT_URL pings against a real HTTP server on 127.0.0.1: the URL on success, /fail on
failure, bounded by their timeout, never raising, never logging the URL."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import pytest
from aiohttp import web

from tests.helpers import free_port
from tests.netfakes import ThreadedLoop
from watchdog.runtime.pings import HeartbeatPinger, ping_url

CHECK = "0f3c5a3e-secret-check-id"


def test_fail_is_appended_to_the_path_and_a_query_stays_a_query():
    assert ping_url(f"https://hc-ping.com/{CHECK}", ok=True) == f"https://hc-ping.com/{CHECK}"
    assert (
        ping_url(f"https://hc-ping.com/{CHECK}/", ok=False) == f"https://hc-ping.com/{CHECK}/fail"
    )
    assert ping_url("https://x.example/p/k?msg=a", ok=False) == "https://x.example/p/k/fail?msg=a"


@pytest.fixture
def monitor() -> Iterator[tuple[ThreadedLoop, int, list[str], asyncio.Event]]:
    seen: list[str] = []
    hang = asyncio.Event()

    async def record(request: web.Request) -> web.Response:
        seen.append(request.path)
        if request.path.endswith("/slow"):
            await hang.wait()
        return web.Response(text="OK")

    app = web.Application()
    app.router.add_get("/{tail:.*}", record)
    loop = ThreadedLoop()
    port = loop.serve(app)
    try:
        yield loop, port, seen, hang
    finally:
        loop.loop.call_soon_threadsafe(hang.set)
        loop.close()


def test_success_and_failure_reach_the_monitor(monitor, caplog):
    loop, port, seen, _ = monitor
    pinger = HeartbeatPinger(f"http://127.0.0.1:{port}/{CHECK}")
    assert loop.run(pinger.ping(ok=True)) is True
    assert loop.run(pinger.ping(ok=False)) is True
    assert seen == [f"/{CHECK}", f"/{CHECK}/fail"]
    assert pinger.sent == 2


def test_a_hanging_monitor_is_abandoned_after_the_timeout_and_the_url_is_never_logged(
    monitor, caplog
):
    loop, port, _seen, _ = monitor
    pinger = HeartbeatPinger(f"http://127.0.0.1:{port}/{CHECK}/slow", timeout=0.3)
    with caplog.at_level(logging.WARNING):
        assert loop.run(pinger.ping(ok=True), timeout=5) is False
        unreachable = HeartbeatPinger(f"http://127.0.0.1:{free_port()}/{CHECK}", timeout=2)
        assert loop.run(unreachable.ping(ok=False), timeout=5) is False
    assert pinger.failed == 1 and unreachable.failed == 1
    assert "heartbeat ping not sent" in caplog.text
    assert CHECK not in caplog.text
