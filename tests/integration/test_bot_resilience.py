"""Telegram failing in every way it can: 401, 409, 429, 5xx, unreachable; SIGTERM's final write."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from conf.exitcodes import EXIT_DATABASE, EXIT_NOT_CONFIGURED
from tests.fakes.telegram_api import FakeTelegramAPI
from tests.helpers import ProcessPool, free_port, wait_until
from tests.integration.test_bot_features import BotUnderTest

pytestmark = pytest.mark.integration


@pytest.fixture
def bot(processes: ProcessPool, fake_api: FakeTelegramAPI, tmp_path: Path) -> BotUnderTest:
    return BotUnderTest(processes, fake_api, tmp_path)


def test_a_401_while_polling_exits_78_with_a_clear_message(
    bot: BotUnderTest, fake_api: FakeTelegramAPI
) -> None:
    proc = bot.start()
    bot.say(1, "/start")
    fake_api.set_get_updates_mode("unauthorized")
    assert proc.wait(15) == EXIT_NOT_CONFIGURED
    output = bot.output()
    assert "Telegram refused TELEGRAM_BOT_TOKEN while polling (401 Unauthorized" in output
    assert fake_api.token not in output
    assert fake_api.token.split(":", 1)[1] not in output


def test_a_409_conflict_backs_off_and_recovers(
    bot: BotUnderTest, fake_api: FakeTelegramAPI
) -> None:
    proc = bot.start()
    fake_api.set_get_updates_mode("conflict")
    time.sleep(4)
    failed = fake_api.failed_get_updates
    # Backoff 1 s, 1.5 s, 2.25 s …: a handful of tries, not a busy loop.
    assert 1 <= failed <= 5, failed
    assert proc.popen.poll() is None
    fake_api.set_get_updates_mode("normal")
    fake_api.send_text(2, "/start")
    fake_api.wait_for_sent(2, contains="Hello", timeout=20)
    output = bot.output()
    assert "Conflict" in output and "retrying with backoff" in output
    assert "Traceback" not in output


def test_network_errors_back_off_and_recover(bot: BotUnderTest, fake_api: FakeTelegramAPI) -> None:
    proc = bot.start()
    fake_api.set_get_updates_mode("bad_gateway")
    time.sleep(3)
    assert 1 <= fake_api.failed_get_updates <= 4
    fake_api.set_get_updates_mode("normal")
    fake_api.send_text(3, "/start")
    fake_api.wait_for_sent(3, contains="Hello", timeout=20)
    assert proc.popen.poll() is None
    assert "Traceback" not in bot.output()


def test_429_honours_retry_after_on_polling_and_on_replies(
    bot: BotUnderTest, fake_api: FakeTelegramAPI
) -> None:
    bot.start()
    fake_api.flood_retry_after = 2
    fake_api.set_get_updates_mode("flood")
    wait_until(lambda: fake_api.failed_get_updates >= 1, 5, what="a 429 on getUpdates")
    fake_api.set_get_updates_mode("normal")
    calls = fake_api.get_updates_calls
    started = time.monotonic()
    wait_until(lambda: fake_api.get_updates_calls > calls, 10, interval=0.05, what="a new poll")
    assert time.monotonic() - started >= 1.5, "polled again before retry_after had passed"
    assert fake_api.failed_get_updates == 1

    fake_api.fail_next("sendMessage", 429, times=1, retry_after=2)
    started = time.monotonic()
    fake_api.send_text(4, "/start")
    reply = fake_api.wait_for_sent(4, timeout=15)
    assert reply["text"].startswith("Hello")
    assert time.monotonic() - started >= 2.0
    assert "chat 4: Telegram asks to wait 2 s (429); trying again in 2.0 s" in bot.output()


def test_telegram_unreachable_at_start_up_is_waited_for(
    processes: ProcessPool, tmp_path: Path
) -> None:
    port = free_port()
    fake = FakeTelegramAPI(port=port)  # not started yet: connection refused
    bot = BotUnderTest(processes, fake, tmp_path)
    proc = bot.start(wait=False)
    wait_until(
        lambda: "cannot reach the Telegram Bot API yet" in bot.output() or proc.popen.poll(),
        timeout=60,
        what="the bot saying it waits",
    )
    assert proc.popen.poll() is None, f"the bot gave up:\n{bot.output()}"
    assert "cannot reach the Telegram Bot API yet" in bot.output()
    with fake:
        bot.wait_polling()
        fake.send_text(5, "/start")
        assert fake.wait_for_sent(5, timeout=10)["text"].startswith("Hello")


def test_sigterm_right_after_a_reply_keeps_the_state(
    bot: BotUnderTest, fake_api: FakeTelegramAPI
) -> None:
    bot.start()
    bot.say(6, "/remember")
    bot.say(6, "kept on shutdown")
    assert bot.stop() == 0
    assert bot.user_data(6) == {"draft": ["kept on shutdown"]}
    assert "bot stopped" in bot.output()


def test_a_database_deleted_under_the_bot_gets_nothing_more_confirmed(
    bot: BotUnderTest, fake_api: FakeTelegramAPI
) -> None:
    """Updates handled after the file was unlinked commit into a file nobody will read: the bot
    must not confirm them to Telegram (they are delivered again after recovery) and must exit
    65, so the watchdog checks the database before relaunching it."""
    proc = bot.start()
    bot.say(1, "/start")
    for path in (bot.database, Path(f"{bot.database}-wal"), Path(f"{bot.database}-shm")):
        path.unlink(missing_ok=True)
    lost = fake_api.send_text(2, "written after the file was deleted")
    assert proc.wait(60) == EXIT_DATABASE
    assert fake_api.confirmed_offset <= lost, "an update handled into a deleted file was confirmed"
    assert "was deleted under the bot" in bot.output()
