"""``python -m bot`` as a real process against the fake Bot API, with a real SQLite file."""

from __future__ import annotations

import os
import signal
import sqlite3
import sys
import textwrap
import time
from collections.abc import Callable

import psutil
import pytest

from conf.exitcodes import EXIT_NOT_CONFIGURED
from tests.fakes.telegram_api import FakeTelegramAPI, make_token
from tests.integration.botrun import START_TIMEOUT, BotRun, gone, wait_until

pytestmark = pytest.mark.integration


# ------------------------------------------------------------------------------- conversations
def test_start_greets_and_registers_the_user(
    launch: Callable[..., BotRun], fake: FakeTelegramAPI
) -> None:
    bot = launch()
    fake.send_text(1001, "/start", first_name="Ann", username="ann")
    reply = fake.wait_for_sent(1001, timeout=START_TIMEOUT)
    assert reply["text"].startswith("Hello, Ann!")
    assert "Nice to meet you" in reply["text"]
    assert reply["result"]["chat"]["id"] == 1001

    # Committed with the update, a moment after the reply went out.
    (row,) = wait_until(bot.users, 5, "the user row to be committed")
    assert row["id"] == 1001
    assert (row["first_name"], row["username"], row["message_count"]) == ("Ann", "ann", 1)
    assert row["first_seen"] == row["last_seen"]

    fake.send_text(1001, "/start", first_name="Ann", username="ann")
    again = fake.wait_for_sent(1001, after=1)
    assert again["text"] == "Welcome back, Ann! I have seen you 2 times."
    wait_until(lambda: bot.users()[0]["message_count"] == 2, 5, "the second visit to count")
    # The command menu was published at start-up.
    commands = fake.calls("setMyCommands")[0]["params"]["commands"]
    assert [c["command"] for c in commands] == [
        "start",
        "help",
        "remember",
        "notes",
        "forget",
        "search",
        "stats",
        "export",
        "deleteme",
    ]


def test_help_unknown_commands_and_odd_input(
    launch: Callable[..., BotRun], fake: FakeTelegramAPI
) -> None:
    bot = launch()
    fake.send_text(2002, "/help", first_name="Bo")
    help_text = fake.wait_for_sent(2002, timeout=START_TIMEOUT)["text"]
    assert "/start" in help_text and "/help" in help_text

    fake.send_text(2002, "/frobnicate now")
    unknown = fake.wait_for_sent(2002, after=1)["text"]
    assert "/frobnicate" in unknown and "/help" in unknown

    # Odd updates: an edited message, a photo without text, a callback query, a channel post.
    message = {"message_id": 99, "date": 1, "chat": {"id": 2002, "type": "private"}}
    user = {"id": 2002, "is_bot": False, "first_name": "Bo"}
    fake.send_update({"edited_message": {**message, "from": user, "edit_date": 2, "text": "/x"}})
    photo = [{"file_id": "p", "file_unique_id": "p", "width": 1, "height": 1}]
    # (A message id of its own: the edit above already made message 99 known.)
    fake.send_update({"message": {**message, "message_id": 100, "from": user, "photo": photo}})
    fake.send_update(
        {"callback_query": {"id": "cb1", "from": user, "chat_instance": "c", "data": "x"}}
    )
    fake.send_update(
        {"channel_post": {"message_id": 5, "date": 1, "chat": {"id": -100, "type": "channel"}}}
    )
    fake.send_text(2002, "/start", first_name="Bo")
    welcome = fake.wait_for_sent(2002, contains="Welcome back", after=2)["text"]
    # /help, /frobnicate, the photo and this /start: four new messages.
    assert welcome == "Welcome back, Bo! I have seen you 4 times."
    assert bot.proc.poll() is None
    assert "Traceback" not in bot.all_output()


# ---------------------------------------------------------------------------------- liveness
def test_heartbeat_advances_while_polling_and_stops_when_get_updates_hangs(
    launch: Callable[..., BotRun], fake: FakeTelegramAPI
) -> None:
    bot = launch()
    first = bot.wait_polling()
    wait_until(
        lambda: (bot.heartbeat_mtime() or 0) > first,
        5,
        "the heartbeat to advance (long-poll timeout is 1 s)",
    )

    fake.set_get_updates_mode("hang")
    # An answer already on its way may still land; after that, nothing moves.
    calls = fake.get_updates_calls
    time.sleep(0.5)
    frozen = bot.heartbeat_mtime()
    assert fake.get_updates_calls == calls
    # Three long-poll periods without a successful getUpdates (asserting an absence needs time).
    time.sleep(3)
    assert bot.heartbeat_mtime() == frozen
    assert bot.proc.poll() is None, "a wedged bot stays alive: the watchdog must act on it"

    fake.set_get_updates_mode("normal")  # (PTB retries once its read timeout expires)


def test_unauthorized_get_updates_stops_polling_and_exits_78(
    launch: Callable[..., BotRun], fake: FakeTelegramAPI
) -> None:
    bot = launch()
    bot.wait_polling()
    fake.set_get_updates_mode("unauthorized")
    # Exit 78 (not configured): the watchdog does not restart it in a loop.
    assert bot.wait(15) == EXIT_NOT_CONFIGURED
    frozen = bot.heartbeat_mtime()
    time.sleep(1)
    assert bot.heartbeat_mtime() == frozen
    assert "401 Unauthorized" in bot.all_output()
    assert fake.token not in bot.all_output()


# ---------------------------------------------------------------------------------- failures
def test_without_a_token_the_bot_exits_78_with_a_clear_message(
    launch: Callable[..., BotRun],
) -> None:
    bot = launch(TELEGRAM_BOT_TOKEN=None)
    assert bot.wait() == EXIT_NOT_CONFIGURED
    assert "TELEGRAM_BOT_TOKEN is not set; the bot cannot start" in bot.stdout
    assert "Traceback" not in bot.all_output()


def test_a_rejected_token_exits_78_and_is_never_shown(
    launch: Callable[..., BotRun], fake: FakeTelegramAPI
) -> None:
    rejected = make_token(987654)
    bot = launch(TELEGRAM_BOT_TOKEN=rejected)
    assert bot.wait() == EXIT_NOT_CONFIGURED
    output = bot.all_output()
    assert "Telegram rejected TELEGRAM_BOT_TOKEN" in output
    assert rejected not in output
    assert rejected.split(":", 1)[1] not in output  # not even the secret half
    assert list(bot.layout.logs.glob("*.log")), "the log file is written too"


def test_sigterm_stops_the_bot_cleanly(
    launch: Callable[..., BotRun], fake: FakeTelegramAPI
) -> None:
    bot = launch()
    bot.wait_polling()
    fake.send_text(3003, "/start")
    fake.wait_for_sent(3003)
    started = time.monotonic()
    bot.proc.send_signal(signal.SIGTERM)
    assert bot.wait(10) == 0
    assert time.monotonic() - started < 10
    assert "bot stopped" in bot.stdout
    # Nothing lost: the row survived, the database is whole.
    with sqlite3.connect(bot.layout.database) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("SELECT message_count FROM users").fetchall() == [(1,)]


# ---------------------------------------------------------------------------------- lifeline
LAUNCHER = textwrap.dedent(
    """
    import os, subprocess, sys, time
    env = dict(os.environ, ERIXCAST_WATCHDOG_PID=str(os.getpid()))
    bot = subprocess.Popen([sys.executable, "-m", "bot"], env=env)
    print(bot.pid, flush=True)
    time.sleep(120)
    """
)


def test_the_bot_dies_with_its_watchdog(
    launch: Callable[..., BotRun], fake: FakeTelegramAPI
) -> None:
    launcher = launch([sys.executable, "-c", LAUNCHER])
    bot_pid = int(
        wait_until(lambda: launcher.stdout.strip(), START_TIMEOUT, "the launcher to print a pid")
    )
    launch.track_pid(bot_pid)  # type: ignore[attr-defined]
    wait_until(launcher.heartbeat_mtime, START_TIMEOUT, "the bot to poll")
    assert psutil.Process(bot_pid).ppid() == launcher.proc.pid

    launcher.proc.kill()
    launcher.proc.wait(10)
    wait_until(lambda: gone(bot_pid), 10, "the orphaned bot to exit")


def test_a_bot_whose_watchdog_is_already_gone_exits_at_once(
    launch: Callable[..., BotRun],
) -> None:
    # The recorded watchdog pid is not our parent: the watchdog died before we armed the lifeline.
    bot = launch(ERIXCAST_WATCHDOG_PID=str(os.getpid() + 1_000_000))
    assert bot.wait(10) == 0
    assert "is gone before the bot started" in bot.stderr
    assert not bot.layout.database.exists(), "it left before touching anything"
