"""Delivery lanes without a network: a fake bot at the Telegram edge, the waits injected."""

from __future__ import annotations

import asyncio
from typing import Any

from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter

from bot.delivery import (
    ANSWER_CALLBACK_QUERY,
    SEND_MESSAGE,
    Delivery,
    Outgoing,
    wait_before_attempt,
)


class FakeBot:
    rate_limiter = None

    def __init__(self) -> None:
        self.sent: list[tuple[str, Any]] = []
        self.failures: dict[int, list[Exception]] = {}

    async def _call(self, method: str, params: dict[str, Any]) -> None:
        queued = self.failures.get(params.get("chat_id", 0))
        if queued:
            raise queued.pop(0)
        self.sent.append((method, params.get("text") or params.get("callback_query_id")))

    async def send_message(self, **params: Any) -> None:
        await self._call(SEND_MESSAGE, params)

    async def edit_message_text(self, **params: Any) -> None:
        await self._call("editMessageText", params)

    async def answer_callback_query(self, **params: Any) -> None:
        await self._call(ANSWER_CALLBACK_QUERY, params)


def message(chat_id: int, text: str, outbox_id: int | None = None) -> Outgoing:
    return Outgoing(chat_id, SEND_MESSAGE, {"chat_id": chat_id, "text": text}, outbox_id)


def test_a_lane_waiting_out_429s_holds_up_no_other_chat() -> None:
    async def scenario() -> None:
        bot = FakeBot()
        bot.failures[1] = [RetryAfter(30), RetryAfter(30)]
        released = asyncio.Event()
        waits: list[float] = []

        async def sleep(seconds: float) -> None:
            waits.append(seconds)
            await released.wait()

        cleared: list[int] = []

        async def on_sent(ids: list[int]) -> None:
            cleared.extend(ids)

        delivery = Delivery(bot, sleep=sleep, on_sent=on_sent)  # type: ignore[arg-type]
        delivery.send(message(1, "slow one", outbox_id=10))
        delivery.send(message(1, "slow two", outbox_id=11))
        delivery.send(message(2, "quick", outbox_id=12))
        for _ in range(50):
            await asyncio.sleep(0)
        assert bot.sent == [(SEND_MESSAGE, "quick")]
        assert waits == [30.0] and cleared == [12]
        released.set()
        assert await delivery.drain(timeout=5)
        assert [text for _, text in bot.sent] == ["quick", "slow one", "slow two"]
        assert waits == [30.0, 30.0]
        assert cleared == [12, 10, 11]

    asyncio.run(scenario())


def test_final_errors_are_given_up_and_the_row_cleared_network_errors_retried() -> None:
    async def scenario() -> None:
        bot = FakeBot()
        bot.failures[1] = [Forbidden("bot was blocked by the user")]
        bot.failures[2] = [NetworkError("reset"), NetworkError("reset")]
        bot.failures[3] = [BadRequest("message is not modified")]
        waits: list[float] = []

        async def sleep(seconds: float) -> None:
            waits.append(seconds)

        cleared: list[int] = []

        async def on_sent(ids: list[int]) -> None:
            cleared.extend(ids)

        delivery = Delivery(bot, sleep=sleep, on_sent=on_sent)  # type: ignore[arg-type]
        for chat, row in ((1, 1), (2, 2), (3, 3)):
            delivery.send(message(chat, f"to {chat}", outbox_id=row))
        assert await delivery.drain(timeout=5)
        assert bot.sent == [(SEND_MESSAGE, "to 2")]
        assert waits == [wait_before_attempt(1), wait_before_attempt(2)]
        assert sorted(cleared) == [1, 2, 3]
        assert delivery.given_up == 2 and delivery.sent == 1

    asyncio.run(scenario())


def test_attempts_are_bounded_and_work_runs_in_its_chats_order() -> None:
    async def scenario() -> None:
        bot = FakeBot()
        bot.failures[1] = [NetworkError("down")] * 10

        async def sleep(seconds: float) -> None:
            return None

        delivery = Delivery(bot, sleep=sleep, attempts=4)  # type: ignore[arg-type]
        order: list[str] = []
        delivery.send(message(1, "lost"))

        async def work() -> None:
            order.append("work after the message")

        delivery.run(1, work)
        assert await delivery.drain(timeout=5)
        assert bot.sent == [] and delivery.given_up == 1
        assert len(bot.failures[1]) == 6, "four attempts, not more"
        assert order == ["work after the message"]

    asyncio.run(scenario())


def test_drain_stops_at_its_timeout_and_leaves_the_rest_in_the_outbox() -> None:
    async def scenario() -> None:
        bot = FakeBot()
        bot.failures[1] = [RetryAfter(60)]
        forever = asyncio.Event()

        async def sleep(seconds: float) -> None:
            await forever.wait()

        cleared: list[int] = []

        async def on_sent(ids: list[int]) -> None:
            cleared.extend(ids)

        delivery = Delivery(bot, sleep=sleep, on_sent=on_sent)  # type: ignore[arg-type]
        delivery.send(message(1, "not yet", outbox_id=7))
        assert not await delivery.drain(timeout=0.05)
        assert cleared == [] and delivery.pending == 0

    asyncio.run(scenario())


def test_waits_double_and_are_capped() -> None:
    assert [wait_before_attempt(n) for n in (1, 2, 3)] == [0.5, 1.0, 2.0]
    assert wait_before_attempt(30) == 60.0


def test_a_stored_message_whose_lease_may_have_lapsed_is_not_sent_nor_cleared() -> None:
    """Another instance may hold it by now: it stays in the outbox for whoever holds it, and
    the same row offered twice (a sweep while it waits) is in one lane once."""

    async def scenario() -> None:
        bot = FakeBot()
        bot.failures[1] = [RetryAfter(30)]
        holding = [True]
        cleared: list[int] = []

        async def sleep(seconds: float) -> None:
            holding[0] = False  # the renewals failed while the lane waited

        async def on_sent(ids: list[int]) -> None:
            cleared.extend(ids)

        delivery = Delivery(bot, on_sent=on_sent, sleep=sleep)  # type: ignore[arg-type]
        delivery.may_send = lambda: holding[0]
        delivery.send(message(1, "held", outbox_id=5))
        delivery.send(message(1, "held", outbox_id=5))
        delivery.send(message(2, "not stored"))
        assert await delivery.drain(timeout=10)
        assert bot.sent == [(SEND_MESSAGE, "not stored")]
        assert cleared == [] and delivery.queued == set()

    asyncio.run(scenario())
