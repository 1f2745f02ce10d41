"""Fair to every chat: one chat's 429s never hold up another's replies, each chat's updates
stay in order while chats run side by side, and a kill -9 in the middle of a burst of many
chats loses no update Telegram was told is done (``python -m bot`` against the fake Bot API)."""

from __future__ import annotations

import re

import pytest

from tests.fakes.telegram_api import FakeTelegramAPI
from tests.helpers import ProcessPool, wait_until
from tests.integration.test_bot_features import BotUnderTest

pytestmark = pytest.mark.integration

UNLIMITED = {"RATE_LIMIT_BURST": "1000", "RATE_LIMIT_PER_MINUTE": "6000"}


@pytest.fixture
def bot(processes: ProcessPool, fake_api: FakeTelegramAPI, tmp_path) -> BotUnderTest:
    return BotUnderTest(processes, fake_api, tmp_path, **UNLIMITED)


def replies(fake: FakeTelegramAPI, chat_id: int, after: int = 0) -> list[str]:
    return [r.get("text") or "" for r in fake.sent(chat_id)[after:]]


def test_a_chat_answered_with_429_does_not_delay_another_chats_reply(
    bot: BotUnderTest, fake_api: FakeTelegramAPI
) -> None:
    bot.start()
    bot.say(1, "/start")
    bot.say(2, "/start")
    slow_before, quick_before = len(fake_api.sent(1)), len(fake_api.sent(2))
    # Three 429s of 3 s each: the slow chat's reply cannot go out before 9 s have passed.
    fake_api.fail_next("sendMessage", 429, times=3, retry_after=3, chat_id=1)
    fake_api.send_text(1, "/help")
    wait_until(lambda: "Telegram asks to wait 3 s" in bot.output(), 20, what="the first 429")
    fake_api.send_text(2, "/help")
    quick = fake_api.wait_for_sent(2, after=quick_before, timeout=20)
    slow = fake_api.wait_for_sent(1, after=slow_before, timeout=60)
    assert quick["text"].startswith("Here is what I understand")
    assert slow["text"].startswith("Here is what I understand")
    assert quick["at"] < slow["at"], "the quiet chat's reply waited for the slow chat's retries"
    assert replies(fake_api, 1, slow_before).count(slow["text"]) == 1, "sent once, not lost"
    assert bot.stop() == 0


def test_each_chat_keeps_its_order_while_twenty_chats_run_side_by_side(
    bot: BotUnderTest, fake_api: FakeTelegramAPI
) -> None:
    users, per_user = list(range(101, 121)), 8
    bot.start()
    for n in range(1, per_user + 1):
        for user in users:
            fake_api.send_text(user, f"/remember note {n} of {user}")
    for user in users:
        wait_until(
            lambda user=user: len(fake_api.sent(user)) >= per_user,
            60,
            what=f"{per_user} replies in chat {user}",
        )
    assert bot.stop() == 0
    for user in users:
        numbers = [
            int(m.group(1)) for t in replies(fake_api, user) if (m := re.search(r"#(\d+)", t))
        ]
        assert numbers == list(range(1, per_user + 1)), f"chat {user}: replies out of order"
        notes = [
            t for (t,) in bot.query("SELECT text FROM notes WHERE user_id = ? ORDER BY id", user)
        ]
        assert notes == [f"note {n} of {user}" for n in range(1, per_user + 1)]
    most = re.search(r"at most (\d+) at once", bot.output())
    assert most is not None and int(most.group(1)) > 1, "the chats were handled one at a time"


def test_a_kill_9_mid_burst_of_many_chats_loses_no_acknowledged_update(
    bot: BotUnderTest, fake_api: FakeTelegramAPI
) -> None:
    users = list(range(201, 221))
    bot.start()
    texts: dict[int, str] = {}
    for n in range(20):
        for user in users:
            text = f"burst {n} from {user}"
            texts[fake_api.send_text(user, text)] = text
    first = min(texts)
    wait_until(lambda: fake_api.confirmed_offset > first + 40, 60, what="part of the burst done")
    bot.kill9()
    acknowledged = [i for i in texts if i < fake_api.confirmed_offset]
    assert acknowledged, "nothing was acknowledged before the kill"

    bot.start()
    wait_until(lambda: fake_api.confirmed_offset > max(texts), 120, what="the rest of the burst")
    assert bot.stop() == 0
    stored = [t for (t,) in bot.query("SELECT text FROM messages WHERE text LIKE 'burst %'")]
    for update_id in acknowledged:
        assert stored.count(texts[update_id]) == 1, f"update {update_id} lost or applied twice"
    assert sorted(stored) == sorted(texts.values())
