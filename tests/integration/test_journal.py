"""The update journal with a real bot process: every acknowledged update is journaled before it
is confirmed, and replay rebuilds what a lost database held — silently, once, never an erased
user."""

from __future__ import annotations

import json
import signal
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from conf.journal import list_segments, read_journal
from tests.fakes.telegram_api import FakeTelegramAPI
from tests.integration.botrun import START_TIMEOUT, BotRun, wait_until

pytestmark = pytest.mark.integration

USERS = (2001, 2002, 2003)


def rows(database: Path, query: str) -> list[tuple]:
    with sqlite3.connect(database, timeout=5) as conn:
        return list(conn.execute(query))


def messages(database: Path) -> list[tuple]:
    return rows(database, "SELECT chat_id, message_id, text FROM messages ORDER BY chat_id, id")


def burst(fake: FakeTelegramAPI, count: int, tag: str = "m") -> list[int]:
    return [
        fake.send_text(USERS[i % len(USERS)], f"{tag} {i}", first_name=f"U{i % len(USERS)}")
        for i in range(count)
    ]


def acknowledged(fake: FakeTelegramAPI, update_ids: list[int]) -> None:
    wait_until(
        lambda: fake.confirmed_offset > max(update_ids),
        START_TIMEOUT,
        "every update to be confirmed to Telegram",
    )


def stop(bot: BotRun) -> None:
    bot.proc.send_signal(signal.SIGTERM)
    assert bot.wait() == 0, bot.all_output()


def lose_database(bot: BotRun) -> None:
    for path in (bot.layout.database, *bot.layout.database_companions):
        path.unlink(missing_ok=True)


def replay(launch: Callable[..., BotRun], bot: BotRun) -> dict:
    report = bot.workdir / "replay.json"
    run = launch(
        [sys.executable, "-m", "bot", "replay", "--report", str(report)],
        DATA_DIR=str(bot.layout.root),
    )
    assert run.wait() == 0, run.all_output()
    return json.loads(report.read_text())


def test_a_deleted_database_comes_back_whole_from_the_journal_and_nothing_is_sent(
    launch: Callable[..., BotRun], fake: FakeTelegramAPI
) -> None:
    bot = launch()
    bot.wait_polling()
    ids = burst(fake, 45)
    fake.send_text(USERS[0], "/remember milk and eggs", first_name="U0")
    ids.append(fake.send_text(USERS[0], "/done", first_name="U0"))
    acknowledged(fake, ids)
    stop(bot)
    replies = len(fake.calls("sendMessage"))
    before = messages(bot.layout.database)
    notes = rows(bot.layout.database, "SELECT user_id, text FROM notes")
    counts = rows(bot.layout.database, "SELECT id, message_count FROM users ORDER BY id")
    assert len(before) == 47 and notes
    journal = read_journal(bot.layout.journal)
    assert {e.update_id for e in journal.updates} >= set(ids)
    for path in bot.layout.journal.iterdir():
        assert path.stat().st_mode & 0o077 == 0, path

    lose_database(bot)
    calls_before = len(fake.calls())
    report = replay(launch, bot)

    assert report["replayed"] == 47 and report["problems"] == []
    assert report["silenced"].get("sendMessage") == replies == 2  # /remember and /done
    assert len(fake.calls()) == calls_before, "replay reached the Bot API"
    assert messages(bot.layout.database) == before
    assert rows(bot.layout.database, "SELECT user_id, text FROM notes") == notes
    assert rows(bot.layout.database, "SELECT id, message_count FROM users ORDER BY id") == counts
    # Replayed with the times the updates arrived, not the time of the replay.
    assert replay(launch, bot)["replayed"] == 0, "replayed twice"


def test_the_bot_replays_before_it_polls_and_answers_after(
    launch: Callable[..., BotRun], fake: FakeTelegramAPI
) -> None:
    bot = launch()
    bot.wait_polling()
    ids = burst(fake, 12)
    acknowledged(fake, ids)
    stop(bot)
    lose_database(bot)

    again = launch(DATA_DIR=str(bot.layout.root))
    fake.send_text(USERS[1], "/start", first_name="U1")
    reply = fake.wait_for_sent(USERS[1], contains="Welcome back", timeout=START_TIMEOUT)
    assert "Welcome back, U1" in reply["text"]
    wait_until(lambda: len(messages(bot.layout.database)) == 13, 10, "the /start row")
    stop(again)


@pytest.mark.parametrize("moment", ["journal-written", "committed"])
def test_a_kill_at_the_worst_moment_loses_nothing_and_applies_nothing_twice(
    launch: Callable[..., BotRun], fake: FakeTelegramAPI, moment: str
) -> None:
    bot = launch()
    bot.wait_polling()
    acknowledged(fake, burst(fake, 3, tag="warm"))
    stop(bot)

    doomed = launch(DATA_DIR=str(bot.layout.root), ERIXCAST_CRASH_AT=moment)
    doomed.wait_polling()
    update_id = fake.send_text(USERS[0], "the last words", first_name="U0")
    assert doomed.wait() == -signal.SIGKILL
    assert fake.confirmed_offset <= update_id, "confirmed before it was durable"

    survivor = launch(DATA_DIR=str(bot.layout.root))
    survivor.wait_polling()
    acknowledged(fake, [update_id])
    stop(survivor)
    texts = [text for _, _, text in messages(bot.layout.database)]
    assert texts.count("the last words") == 1
    ((count,),) = rows(bot.layout.database, f"SELECT message_count FROM users WHERE id={USERS[0]}")
    assert count == 2  # "warm 0" and the last words, each counted once


def test_an_erased_user_does_not_come_back_from_the_journal(
    launch: Callable[..., BotRun], fake: FakeTelegramAPI
) -> None:
    bot = launch()
    bot.wait_polling()
    ids = burst(fake, 9)
    fake.send_text(USERS[2], "/deleteme", first_name="U2")
    question = fake.wait_for_sent(USERS[2], contains="Are you sure", timeout=START_TIMEOUT)
    ids.append(fake.send_callback(USERS[2], "deleteme:yes", question["result"], first_name="U2"))
    fake.wait_for_sent(USERS[2], contains="Done: I erased", timeout=START_TIMEOUT)
    ids += [fake.send_text(user, "after", first_name="U") for user in USERS[:2]]
    acknowledged(fake, ids)
    stop(bot)
    assert all(e.user_id != USERS[2] for e in read_journal(bot.layout.journal).updates)
    for path in list_segments(bot.layout.journal):
        assert b"U2" not in path.read_bytes()

    lose_database(bot)
    report = replay(launch, bot)
    assert report["erasures"] == 1
    people = {user_id for (user_id,) in rows(bot.layout.database, "SELECT id FROM users")}
    assert people == set(USERS[:2])
    assert USERS[2] not in {chat for chat, _, _ in messages(bot.layout.database)}
    assert len(messages(bot.layout.database)) == 6 + 2  # the others' messages, and "after"


def test_an_erasure_is_made_again_on_a_database_restored_from_before_it(
    launch: Callable[..., BotRun], fake: FakeTelegramAPI
) -> None:
    bot = launch()
    bot.wait_polling()
    acknowledged(fake, burst(fake, 6))
    stop(bot)
    old_copy = bot.workdir / "before-erasure.db"
    with sqlite3.connect(bot.layout.database) as source, sqlite3.connect(old_copy) as target:
        source.backup(target)

    again = launch(DATA_DIR=str(bot.layout.root))
    fake.send_text(USERS[2], "/deleteme", first_name="U2")
    question = fake.wait_for_sent(USERS[2], contains="Are you sure", timeout=START_TIMEOUT)
    last = fake.send_callback(USERS[2], "deleteme:yes", question["result"], first_name="U2")
    fake.wait_for_sent(USERS[2], contains="Done: I erased", timeout=START_TIMEOUT)
    acknowledged(fake, [last])
    stop(again)

    lose_database(bot)
    old_copy.rename(bot.layout.database)  # a restore of a backup taken before the erasure
    report = replay(launch, bot)
    assert report["erasures"] == 1
    people = {user_id for (user_id,) in rows(bot.layout.database, "SELECT id FROM users")}
    assert people == set(USERS[:2])
    assert USERS[2] not in {chat for chat, _, _ in messages(bot.layout.database)}


def test_a_torn_journal_tail_is_cut_and_said_and_the_bot_goes_on(
    launch: Callable[..., BotRun], fake: FakeTelegramAPI
) -> None:
    bot = launch()
    bot.wait_polling()
    acknowledged(fake, burst(fake, 4))
    stop(bot)
    segment = list_segments(bot.layout.journal)[-1]
    with segment.open("ab") as handle:
        handle.write(b'0123456789abcdef {"v":1,"kind":"upd')

    again = launch(DATA_DIR=str(bot.layout.root))
    again.wait_polling()
    acknowledged(fake, burst(fake, 2, tag="later"))
    stop(again)
    assert "cut there" in again.all_output()
    assert list(bot.layout.journal.glob("cut-*.bin"))
    assert len(read_journal(bot.layout.journal).updates) == 6
