"""The outbox across webhook instances on one PostgreSQL database (real processes, the fake Bot
API's load balancer): a reply another live instance is still sending is not sent again by an
instance that starts meanwhile, nor by one that lives beside it; once that instance is killed
with -9 mid-send, the other sends the reply, once."""

from __future__ import annotations

import time
from pathlib import Path

import psycopg
import pytest

from bot.storage.outbox import LEASE_SECONDS
from tests.fakes.telegram_api import FakeTelegramAPI
from tests.helpers import ProcessPool, free_port, wait_until
from tests.integration.webhookrun import WebhookBot
from tests.pg import PostgresServer

pytestmark = pytest.mark.integration

HELD, OTHER = 611, 612
HOLDS = 4
"""429s queued for the held reply: the holder's attempts over about three minutes."""


def claims(database: str) -> list[tuple[int, str | None]]:
    """The stored messages: chat and who holds them."""
    with psycopg.connect(database) as conn:
        return list(
            conn.execute(
                "SELECT o.chat_id, c.claimed_by FROM outbox o "
                "LEFT JOIN outbox_claims c ON c.id = o.id ORDER BY o.id"
            )
        )


def failures_left(fake: FakeTelegramAPI, chat_id: int) -> int:
    """How many of the failures queued for the chat's sendMessage are still to come (the
    fake keeps no record of a call it failed)."""
    return fake.failures_left("sendMessage", chat_id=chat_id)


@pytest.mark.timeout(600)
def test_a_reply_being_sent_by_a_live_instance_is_sent_once(
    processes: ProcessPool, fake_api: FakeTelegramAPI, tmp_path: Path, postgres: PostgresServer
) -> None:
    database = postgres.url(postgres.create_database())
    public = f"http://127.0.0.1:{free_port()}/telegram"
    first, second = (
        WebhookBot(
            processes, fake_api, tmp_path / f"i{k}", public_url=public, DATABASE_URL=database
        )
        for k in range(2)
    )
    first.start()
    second.start()
    assert first.proc is not None
    # The first instance's send of the reply is held in 429 waits (60 s each): it is mid-send,
    # its row stored and claimed, while the other instance restarts and works beside it.
    fake_api.fail_next("sendMessage", 429, times=HOLDS, retry_after=60, chat_id=HELD)
    fake_api.webhook.route([first.url])
    fake_api.send_text(HELD, "/remember held reply")
    wait_until(lambda: failures_left(fake_api, HELD) == HOLDS - 1, 60, what="the first attempt")
    first_attempt = time.monotonic()
    owner = f"pid {first.proc.popen.pid} "
    (held,) = claims(database)
    assert held[0] == HELD, held

    def attempts_by_others() -> int:
        """Attempts at the held reply beyond the holder's own (one, then one a minute)."""
        while True:
            elapsed = time.monotonic() - first_attempt
            if 3 < elapsed % 60 < 57 or elapsed < 57:  # not at a moment the holder retries
                holder = min(HOLDS, 1 + int(elapsed // 60))
                return HOLDS - failures_left(fake_api, HELD) - holder + len(fake_api.sent(HELD))
            time.sleep(0.5)

    assert second.stop() == 0
    second.start()  # a starting instance: before leases it sent every stored row at once
    fake_api.webhook.route([second.url])
    before = len(fake_api.sent(OTHER))
    fake_api.send_text(OTHER, "/remember something else")
    fake_api.wait_for_sent(OTHER, after=before, timeout=60)
    # Beside the live holder for longer than a lease (the holder renews it; nobody takes it).
    beside_until = time.monotonic() + LEASE_SECONDS + 6
    while time.monotonic() < beside_until:
        assert attempts_by_others() == 0, "sent by another instance while its sender lives"
        time.sleep(0.5)
    assert claims(database) == [held] and owner in str(held[1]), "not held by its sender"

    first.kill9()
    fake_api.clear_failures()  # the killed instance's later attempts would have had them
    wait_until(lambda: len(fake_api.sent(HELD)) >= 1, 120, what="the reply sent by the other")
    wait_until(lambda: claims(database) == [], 30, what="the reply's row deleted once sent")
    assert second.stop() == 0
    replies = [m.get("text") or "" for m in fake_api.sent(HELD)]
    assert len(replies) == 1 and "#" in replies[0], replies
    assert len(fake_api.sent(OTHER)) == 1
