"""The pieces of exactly-once handling without a process: ledger, 429 retries, watchdog client."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from telegram import Update
from telegram.error import RetryAfter

from bot.durable import UpdateLedger
from bot.retry_after import RetryAfterLimiter
from bot.watchdog_client import WatchdogClient, WatchdogError, WatchdogNotConfigured
from conf.secret import Secret


def updates(*ids: int) -> list[Update]:
    return [Update(update_id) for update_id in ids]


def test_the_ledger_holds_the_offset_below_unfinished_updates() -> None:
    ledger = UpdateLedger()
    assert ledger.hold(None) is None and ledger.hold(0) == 0 and ledger.hold(7) == 7
    assert [u.update_id for u in ledger.admit(updates(5, 6, 7))] == [5, 6, 7]
    assert ledger.hold(8) == 5, "not confirmed before they are durable"
    assert ledger.admit(updates(5, 6, 7, 8)) == updates(8), "copies are dropped"
    ledger.finish([5, 6])
    assert ledger.hold(9) == 7
    assert ledger.admit(updates(5, 6)) == [], "finished lately: still a copy"
    assert ledger.known({"update_id": 6}) and not ledger.known({"update_id": 99})
    ledger.finish([7, 8])
    assert ledger.hold(9) == 9 and ledger.unfinished == frozenset()


def test_the_ledger_forgets_old_finished_ids() -> None:
    ledger = UpdateLedger(recent=3)
    ledger.admit(updates(1, 2, 3, 4))
    ledger.finish([1, 2, 3, 4])
    assert not ledger.known({"update_id": 1}) and ledger.known({"update_id": 4})


def test_waiting_for_progress_never_misses_a_wake_up() -> None:
    async def scenario() -> float:
        ledger = UpdateLedger()
        ledger.admit(updates(1))
        marker = ledger.progress_marker()
        ledger.finish([1])  # before anyone waits
        loop = asyncio.get_running_loop()
        started = loop.time()
        await ledger.wait_for_progress(marker, 5)
        return loop.time() - started

    assert asyncio.run(scenario()) < 0.5


@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
def test_retry_after_is_honoured_then_given_up() -> None:
    calls: list[float] = []

    async def scenario(failures: int, retry_after: float) -> Any:
        loop = asyncio.get_running_loop()

        async def callback() -> Any:
            calls.append(loop.time())
            if len(calls) <= failures:
                raise RetryAfter(retry_after)
            return {"ok": True}

        limiter = RetryAfterLimiter(max_retries=2, max_wait=5)
        return await limiter.process_request(callback, (), {}, "sendMessage", {}, None)

    assert asyncio.run(scenario(1, 0.2)) == {"ok": True}
    assert calls[1] - calls[0] >= 0.19
    calls.clear()
    with pytest.raises(RetryAfter):
        asyncio.run(scenario(5, 0.01))
    assert len(calls) == 3, "two retries, then the error"
    calls.clear()
    with pytest.raises(RetryAfter):
        asyncio.run(scenario(1, 3600))  # longer than max_wait: not waited for
    assert len(calls) == 1


SECRET = "watchdog-secret-" + "x" * 20


def client(handler: Any) -> WatchdogClient:
    return WatchdogClient(
        "http://127.0.0.1:1/", Secret(SECRET), transport=httpx.MockTransport(handler)
    )


def test_watchdog_client_sends_the_secret_and_reads_json() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"id": "m1", "size_bytes": 3})

    assert asyncio.run(client(handler).backup()) == {"id": "m1", "size_bytes": 3}
    assert seen[0].method == "POST" and seen[0].url.path == "/backup"
    assert seen[0].headers["Authorization"] == f"Bearer {SECRET}"


@pytest.mark.parametrize(
    ("response", "message"),
    [
        (httpx.Response(500, json={"error": "disk full"}), "answered /status with 500: disk full"),
        (httpx.Response(401, json={"error": "no"}), "refused the bot's credentials"),
        (httpx.Response(200, text="not json"), "is not a JSON object"),
        (httpx.Response(502, text="<html>"), "answered /status with 502"),
    ],
)
def test_watchdog_client_errors_are_sentences(response: httpx.Response, message: str) -> None:
    with pytest.raises(WatchdogError) as raised:
        asyncio.run(client(lambda request: response).status())
    assert message in str(raised.value)
    assert SECRET not in str(raised.value)


def test_watchdog_client_unreachable_or_slow_or_absent() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    with pytest.raises(WatchdogError, match="cannot reach the watchdog for /backups"):
        asyncio.run(client(refuse).backups())
    with pytest.raises(WatchdogError, match="did not answer /backup within 120 s"):
        asyncio.run(client(slow).backup())
    with pytest.raises(WatchdogNotConfigured):
        asyncio.run(WatchdogClient(None, None).status())
