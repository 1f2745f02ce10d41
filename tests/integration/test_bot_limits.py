"""The per-user limits with a real bot process against the fake Bot API: the rate limit, the
storage quota, /notes in one paginated message, and /export of a big history streamed within
bounded memory. Big histories are written straight into the database before the bot starts."""

from __future__ import annotations

import contextlib
import gzip
import json
import random
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from bot.storage import Storage
from tests.dbgen import sentence
from tests.fakes.telegram_api import FakeTelegramAPI
from tests.helpers import PeakRSS, ProcessPool, wait_until
from tests.integration.test_bot_features import REPLY_TIMEOUT, BotUnderTest

pytestmark = pytest.mark.integration

ADMIN = 77
SLOW_DOWN = "You are sending faster than I can keep up with"
FULL = "Your storage is full"


def acknowledged(fake: FakeTelegramAPI, update_id: int, timeout: float = 30.0) -> None:
    """Until Telegram was told the update is done (its effects committed)."""
    wait_until(lambda: fake.confirmed_offset > update_id, timeout, what=f"update {update_id}")


def texts_to(fake: FakeTelegramAPI, chat_id: int, method: str = "sendMessage") -> list[str]:
    return [r.get("text") or "" for r in fake.sent(chat_id) if r["method"] == method]


def seed(database: Path, sql: str, rows: list[tuple[Any, ...]]) -> None:
    """Rows straight into the bot's schema (its FTS triggers fire as for the bot's own)."""
    database.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    Storage.open(database).close()
    with contextlib.closing(sqlite3.connect(database)) as conn:
        conn.execute("PRAGMA synchronous=OFF")
        conn.executemany(sql, rows)
        conn.commit()


def seed_user(database: Path, user_id: int) -> None:
    seed(
        database,
        "INSERT INTO users (id, first_name, first_seen, last_seen, message_count) "
        "VALUES (?, 'Big', '2026-01-01T00:00:00+00:00', '2026-01-01T00:00:00+00:00', 0)",
        [(user_id,)],
    )


@pytest.fixture
def make_bot(processes: ProcessPool, fake_api: FakeTelegramAPI, tmp_path: Path) -> Any:
    def make(**env: str) -> BotUnderTest:
        return BotUnderTest(processes, fake_api, tmp_path, **env)

    return make


# ------------------------------------------------------------------------------- rate limit
def test_a_user_over_the_rate_is_told_once_and_their_flood_is_not_kept(
    make_bot: Any, fake_api: FakeTelegramAPI
) -> None:
    bot = make_bot(RATE_LIMIT_BURST="3", RATE_LIMIT_PER_MINUTE="1", ADMIN_IDS=str(ADMIN))
    bot.start()
    last = 0
    for n in range(12):
        last = fake_api.send_text(21, f"flood {n}")
    last = fake_api.send_text(21, "/help")
    for n in range(12):
        last = fake_api.send_text(ADMIN, f"admin {n}")
    fake_api.send_text(22, "/start")
    acknowledged(fake_api, last)
    fake_api.wait_for_sent(22, contains="Hello", timeout=REPLY_TIMEOUT)

    # Confirmed is not sent: the notice leaves in its own lane, beside the next getUpdates.
    replies = wait_until(lambda: texts_to(fake_api, 21), REPLY_TIMEOUT, what="the notice")
    assert len(replies) == 1 and replies[0].startswith(SLOW_DOWN), replies
    assert "not saved" in replies[0]
    stored = bot.query("SELECT text FROM messages WHERE user_id = 21 ORDER BY id")
    assert stored == [("flood 0",), ("flood 1",), ("flood 2",)]
    assert len(bot.query("SELECT 1 FROM messages WHERE user_id = ?", ADMIN)) == 12
    assert texts_to(fake_api, ADMIN) == [], "administrators are not limited"

    # A button pressed while limited: answered quietly, nothing else.
    press = fake_api.send_callback(
        21, "deleteme:yes", {"message_id": 1, "date": 0, "chat": {"id": 21, "type": "private"}}
    )
    acknowledged(fake_api, press)
    assert bot.user_rows(21)["messages"] == 3, "the press was not run"
    assert len(texts_to(fake_api, 21)) == 1 and texts_to(fake_api, 21, "editMessageText") == []


def test_replay_is_not_rate_limited(
    make_bot: Any, fake_api: FakeTelegramAPI, processes: ProcessPool
) -> None:
    """Replay handles each update the journal holds as it was first handled, without a rate
    limit (its updates were acknowledged once already): a burst an earlier process took in
    comes back whole onto a lost database."""
    bot = make_bot(RATE_LIMIT_BURST="1000")
    bot.start()
    last = 0
    for n in range(40):
        last = fake_api.send_text(23, f"burst {n}")
    acknowledged(fake_api, last)
    wait_until(lambda: bot.user_rows(23)["messages"] == 40, 10, what="the burst stored")
    assert bot.stop() == 0
    for path in bot.data_dir.glob("erixcast.db*"):
        path.unlink()

    bot.env.update(RATE_LIMIT_BURST="2", RATE_LIMIT_PER_MINUTE="1")
    bot.start()  # replays the journal before it polls
    assert bot.user_rows(23)["messages"] == 40
    assert texts_to(fake_api, 23) == [], "replay sends nothing, no notice either"
    fake_api.send_text(24, "/start")
    fake_api.wait_for_sent(24, contains="Hello", timeout=REPLY_TIMEOUT)


# ------------------------------------------------------------------------------------ quota
def test_a_user_at_the_quota_cannot_grow_the_database(
    make_bot: Any, fake_api: FakeTelegramAPI
) -> None:
    bot = make_bot(USER_QUOTA_MB="0.01")  # 10,485 bytes
    # Counted from the database at the first write: exactly the quota already stored.
    seed(
        bot.database,
        "INSERT INTO messages (chat_id, message_id, user_id, kind, text, sent_at) "
        "VALUES (31, ?, 31, 'text', ?, '2026-01-01T00:00:00+00:00')",
        [(100_000, "y" * 5000), (100_001, "y" * 5000), (100_002, "y" * 293)],
    )
    bot.start()
    refusal = bot.say(31, "z", contains=FULL)
    assert "10.2 KB" in refusal and "did not save" in refusal
    size = bot.query("SELECT COUNT(*), SUM(length(text)) FROM messages WHERE user_id = 31")
    assert bot.say(31, "/remember one more thing", contains=FULL)
    last = 0
    for n in range(5):
        last = fake_api.send_text(31, f"more {n}")
    fake_api.send_message(
        31,
        sticker={
            "file_id": "s",
            "file_unique_id": "s",
            "width": 1,
            "height": 1,
            "is_animated": False,
            "is_video": False,
            "type": "regular",
        },
    )
    edited = fake_api.send_edit(31, 100_000, "y" * 6000)
    acknowledged(fake_api, max(last, edited))
    assert bot.query("SELECT COUNT(*), SUM(length(text)) FROM messages WHERE user_id = 31") == size
    assert bot.query("SELECT COUNT(*) FROM notes WHERE user_id = 31") == [(0,)]
    fulls = [t for t in texts_to(fake_api, 31) if t.startswith(FULL)]
    assert len(fulls) == 2, "the plain messages are told once; the command always"

    # Nothing else broke: the user's other commands work, another user writes freely.
    assert "Messages: 3" in bot.say(31, "/stats")
    assert bot.say(32, "/remember fine here").startswith("Noted as #1")
    assert bot.say(32, "/remember " + "w" * 3000).startswith("Noted as #2")
    assert bot.say(32, "/remember " + "w" * 4000, contains=FULL)
    assert bot.say(32, "/forget 2").startswith("Forgot note 2")
    assert bot.say(32, "/remember room again").startswith("Noted as #2"), "forgetting frees room"


# ---------------------------------------------------------------------------------- /notes
def test_twenty_thousand_notes_are_one_message_with_buttons_that_page(
    make_bot: Any, fake_api: FakeTelegramAPI
) -> None:
    bot = make_bot()
    seed(
        bot.database,
        "INSERT INTO notes (user_id, text, created_at) VALUES (41, ?, '2026-01-01T00:00:00+00:00')",
        [(f"note {n} " + "é" * 400,) for n in range(1, 20_001)],
    )
    bot.start()
    update = fake_api.send_text(41, "/notes")
    first = fake_api.wait_for_sent(41, timeout=REPLY_TIMEOUT)
    acknowledged(fake_api, update)
    assert len(texts_to(fake_api, 41)) == 1
    lines = first["text"].splitlines()
    assert lines[0] == "Your notes (20,000), page 1 of 2,000:"
    assert lines[1].startswith("1. note 1 ") and lines[10].startswith("10. note 10 ")
    assert len(first["text"]) <= 4096
    assert buttons(first) == ["notes:page:1"]

    def press(data: str) -> dict[str, Any]:
        before = len(fake_api.sent(41))
        fake_api.send_callback(41, data, first["result"])
        return fake_api.wait_for_sent(41, after=before, timeout=REPLY_TIMEOUT)

    second = press("notes:page:1")
    assert second["method"] == "editMessageText" and second["message_id"] == first["message_id"]
    assert second["text"].splitlines()[0] == "Your notes (20,000), page 2 of 2,000:"
    assert second["text"].splitlines()[1].startswith("11. note 11 ")
    assert buttons(second) == ["notes:page:0", "notes:page:2"]
    last = press("notes:page:1999")
    assert last["text"].splitlines()[-1].startswith("20000. note 20000 ")
    assert buttons(last) == ["notes:page:1998"]
    assert press("notes:page:9999999")["text"] == last["text"], "past the end: the last page"
    for bad in ("notes:page:-1", "notes:page:x", "notes:" + "9" * 60):
        answered = len(fake_api.calls("answerCallbackQuery"))
        update = fake_api.send_callback(41, bad, first["result"])
        acknowledged(fake_api, update)
        wait_until(
            lambda answered=answered: len(fake_api.calls("answerCallbackQuery")) > answered,
            REPLY_TIMEOUT,
            what="the press answered",
        )
        assert len(fake_api.calls("answerCallbackQuery")) == answered + 1
    stranger = fake_api.send_callback(42, "notes:page:3", first["result"])
    acknowledged(fake_api, stranger)
    assert len(texts_to(fake_api, 41)) == 1, "still one message"
    assert all(len(r.get("text") or "") <= 4096 for r in fake_api.sent(41))
    assert "There is no note 20001; you have 20000" in bot.say(41, "/forget 20001")
    assert bot.say(41, "/forget 20000").startswith("Forgot note 20000: “note 20000 ")


def buttons(record: dict[str, Any]) -> list[str]:
    markup = record["params"].get("reply_markup") or {}
    return [b["callback_data"] for row in markup.get("inline_keyboard", []) for b in row]


# ---------------------------------------------------------------------------------- /export
EXPORT_MESSAGES = 200_000


def test_an_export_of_200k_messages_streams_within_50_mb_of_memory(
    make_bot: Any, fake_api: FakeTelegramAPI
) -> None:
    bot = make_bot()
    rng = random.Random(51)
    seed_user(bot.database, 51)
    seed(
        bot.database,
        "INSERT INTO messages (chat_id, message_id, user_id, kind, text, sent_at) "
        "VALUES (51, ?, 51, 'text', ?, '2026-01-01T00:00:00+00:00')",
        [(n, f"message {n}: {sentence(rng)}") for n in range(EXPORT_MESSAGES)],
    )
    leftover = bot.data_dir / "run" / "exports" / "erixcast-export-51-dead.json.gz.part1"
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"left by a killed export")
    bot.start()
    assert not leftover.exists(), "leftovers are cleaned at the start"
    assert bot.say(51, "/help").startswith("Here is what I understand")
    assert bot.proc is not None
    with PeakRSS(bot.proc.pid) as rss:
        before = len(fake_api.sent(51))
        fake_api.send_text(51, "/export")
        record = fake_api.wait_for_sent(51, after=before, timeout=180)
    grown = rss.grown_mb
    assert record["method"] == "sendDocument", record
    assert record["filename"] == "erixcast-export-51.json.gz"
    assert len(record["document"]) < 50 * 1000 * 1000
    assert grown < 50, f"the bot grew by {grown:.1f} MB during the export"
    document = json.loads(gzip.decompress(record["document"]))
    assert len(document["messages"]) == EXPORT_MESSAGES
    assert document["messages"][-1]["message_id"] == EXPORT_MESSAGES - 1
    assert "200,000 messages" in record["caption"]
    wait_until(
        lambda: list((bot.data_dir / "run" / "exports").iterdir()) == [],
        10,
        what="the export's files removed",
    )
    print(
        f"export of {EXPORT_MESSAGES} messages: +{grown:.1f} MB RSS, "
        f"{len(record['document']) / 1e6:.1f} MB compressed"
    )
