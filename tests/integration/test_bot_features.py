"""The bot's commands end to end: ``python -m bot`` against the fake Bot API, each test on both
databases the bot can use: a real SQLite file, and a real PostgreSQL database (``DATABASE_URL``).

Replies go out before the batch commits (a few milliseconds later), so database checks wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import signal
import sqlite3
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.fakes.telegram_api import FakeTelegramAPI
from tests.helpers import Proc, ProcessPool, base_env, free_port, wait_until
from tests.storage_backends import StorageBackend

pytestmark = pytest.mark.integration

START_TIMEOUT = 20.0
REPLY_TIMEOUT = 10.0


class BotUnderTest:
    """One bot data directory; start, kill -9, stop and restart the process over it."""

    def __init__(
        self,
        processes: ProcessPool,
        fake: FakeTelegramAPI,
        root: Path,
        backend: StorageBackend | None = None,
        **env: str,
    ) -> None:
        self.processes = processes
        self.backend = backend
        self.fake = fake
        self.data_dir = root / "data"
        self.database = self.data_dir / "erixcast.db"
        self.heartbeat = self.data_dir / "run" / "bot.heartbeat"
        environment = base_env(
            self.data_dir,
            free_port(),
            TELEGRAM_BOT_TOKEN=fake.token,
            TELEGRAM_API_URL=fake.base_url,
            LOG_LEVEL="INFO",
        )
        for key in [k for k in environment if k.startswith("ERIXCAST_")]:
            del environment[key]
        if backend is not None:
            environment.update(backend.env)
        environment.update(env)
        self.env = environment
        self.proc: Proc | None = None

    def start(self, wait: bool = True) -> Proc:
        with contextlib.suppress(FileNotFoundError):
            self.heartbeat.unlink()
        self.proc = self.processes.start("bot", [sys.executable, "-m", "bot"], self.env)
        if wait:
            self.wait_polling()
        return self.proc

    def wait_polling(self) -> None:
        proc = self.proc
        assert proc is not None

        def polling() -> bool:
            if proc.popen.poll() is not None:
                raise AssertionError(f"the bot exited early:\n{proc.output()}")
            return self.heartbeat.exists()

        try:
            wait_until(polling, START_TIMEOUT, what="the bot to poll")
        except AssertionError as error:
            raise AssertionError(f"{error}\n{proc.output()}") from None

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.popen.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.popen.send_signal(signal.SIGTERM)
        return self.proc.wait(15)

    def output(self) -> str:
        logs = sorted((self.data_dir / "logs").glob("*")) if self.data_dir.exists() else []
        parts = [self.proc.output() if self.proc else ""]
        parts += [p.read_text(errors="replace") for p in logs]
        return "\n".join(parts)

    # ------------------------------------------------------------------------- talking
    def say(self, user_id: int, text: str, contains: str | None = None, **kw: Any) -> str:
        """Send a message and return the bot's next reply in that chat (its text/caption)."""
        before = len(self.fake.sent(user_id))
        self.fake.send_text(user_id, text, **kw)
        record = self.fake.wait_for_sent(
            user_id, contains=contains, after=before, timeout=REPLY_TIMEOUT
        )
        return record.get("text") or record.get("caption") or ""

    # ------------------------------------------------------------------------ database
    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """``?`` parameters, on whichever database the bot uses."""
        if self.backend is not None and not self.backend.is_sqlite:
            import psycopg

            with psycopg.connect(str(self.backend.target)) as conn:
                return list(conn.execute(sql.replace("?", "%s"), params))
        with contextlib.closing(sqlite3.connect(self.database, timeout=5)) as conn:
            return list(conn.execute(sql, params))

    def user_rows(self, user_id: int) -> dict[str, int]:
        """How many rows anywhere still belong to the user."""
        key = str(user_id)
        counts = {
            "users": self.query("SELECT COUNT(*) FROM users WHERE id = ?", user_id)[0][0],
            "chats": self.query("SELECT COUNT(*) FROM chats WHERE id = ?", user_id)[0][0],
            "messages": self.query(
                "SELECT COUNT(*) FROM messages WHERE user_id = ? OR chat_id = ?", user_id, user_id
            )[0][0],
            "notes": self.query("SELECT COUNT(*) FROM notes WHERE user_id = ?", user_id)[0][0],
            "persistence": self.query(
                "SELECT COUNT(*) FROM persistence WHERE (kind IN ('user_data', 'chat_data') "
                "AND key = ?) OR (kind = 'conversation' AND key LIKE ?)",
                key,
                f"%{key}%",
            )[0][0],
        }
        return counts

    def user_data(self, user_id: int) -> dict[str, Any] | None:
        from bot import codec

        rows = self.query(
            "SELECT value FROM persistence WHERE kind = 'user_data' AND key = ?", str(user_id)
        )
        return codec.loads(rows[0][0]) if rows else None


@pytest.fixture
def bot(
    processes: ProcessPool,
    fake_api: FakeTelegramAPI,
    tmp_path: Path,
    storage_backend: StorageBackend,
) -> BotUnderTest:
    """The bot on a SQLite file, then on a PostgreSQL database."""
    return BotUnderTest(processes, fake_api, tmp_path, storage_backend)


# ------------------------------------------------------------------------------------ notes
def test_remember_notes_and_forget(bot: BotUnderTest) -> None:
    bot.start()
    assert bot.say(5, "/remember buy milk") == "Noted as #1. /notes lists them all."
    assert bot.say(5, "/remember\ncall mom\nat six").startswith("Noted as #2")
    listing = bot.say(5, "/notes")
    assert listing.splitlines() == ["Your notes (2):", "1. buy milk", "2. call mom at six"]

    assert bot.say(5, "/forget 1").startswith("Forgot note 1: “buy milk”")
    assert bot.say(5, "/notes").splitlines() == ["Your notes (1):", "1. call mom at six"]
    assert bot.say(5, "/forget 9") == "There is no note 9; you have 1. /notes lists them."
    for bad in ("/forget", "/forget two", "/forget -1", "/forget ٣", "/forget 99999999999"):
        assert "Send /forget with the number of a note" in bot.say(5, bad)
    huge = "x" * 5000
    assert "a note holds at most 4,096" in bot.say(5, f"/remember {huge}")
    assert bot.say(6, "/notes") == "No notes yet. Save one with /remember <text>."
    # The huge message is in the history all the same.
    wait_until(
        lambda: bot.query("SELECT COUNT(*) FROM messages WHERE length(text) > 5000")[0][0] == 1,
        5,
        what="the huge message in the history",
    )


def test_a_conversation_and_user_data_survive_kill_9(bot: BotUnderTest) -> None:
    bot.start()
    assert bot.say(7, "/remember").startswith("What should I remember?")
    assert bot.say(7, "first part") == "Got it (1 part). More text, or /done to save."
    # Written within about a second of the handler (durably, before Telegram is told).
    wait_until(
        lambda: (bot.user_data(7) or {}).get("draft") == ["first part"],
        2,
        what="the draft in the database",
    )
    assert bot.query("SELECT key, value FROM persistence WHERE kind = 'conversation'") == [
        ('{"$tuple":[7,7]}', '"drafting"')
    ]
    bot.kill9()

    bot.start()
    assert bot.say(7, "second part") == "Got it (2 parts). More text, or /done to save."
    assert bot.say(7, "/done") == "Noted as #1. /notes lists them all."
    assert bot.say(7, "/notes") == "Your notes (1):\n1. first part second part"
    wait_until(
        lambda: (
            bot.user_data(7) == {}
            and not bot.query("SELECT 1 FROM persistence WHERE kind = 'conversation'")
        ),
        3,
        what="the finished conversation to leave no state",
    )
    assert bot.query("SELECT text FROM notes") == [("first part\nsecond part",)]
    assert bot.say(7, "/done") == "There is no note in progress. Start one with /remember."
    assert bot.say(7, "/remember") and bot.say(7, "/cancel") == "Dropped. Nothing was saved."


def test_an_update_killed_mid_flight_is_handled_exactly_once(
    bot: BotUnderTest, fake_api: FakeTelegramAPI
) -> None:
    bot.start()
    bot.say(8, "/remember").startswith("What")
    for n in range(1, 6):
        fake_api.send_text(8, f"part {n}")
    # Kill as soon as the last answer is out: its commit may or may not have happened.
    fake_api.wait_for_sent(8, contains="(5 parts)", timeout=REPLY_TIMEOUT)
    bot.kill9()
    bot.start()
    # Parts not committed before the kill come again (replies included), each applied once.
    assert bot.say(8, "part 6", contains="(6 parts)").startswith("Got it (6 parts).")
    assert bot.user_data(8) is not None
    wait_until(
        lambda: (bot.user_data(8) or {}).get("draft") == [f"part {n}" for n in range(1, 7)],
        3,
        what="six parts, each once",
    )
    assert bot.query("SELECT COUNT(*) FROM messages WHERE user_id = 8")[0][0] == 7


def test_a_redelivered_update_changes_nothing_twice(
    bot: BotUnderTest, fake_api: FakeTelegramAPI
) -> None:
    bot.start()
    before = len(fake_api.sent(9))
    update_id = fake_api.send_text(9, "/remember only once")
    fake_api.wait_for_sent(9, contains="Noted as #1", after=before)
    wait_until(
        lambda: bot.query("SELECT 1 FROM processed_updates WHERE update_id = ?", update_id),
        3,
        what="the update to be recorded",
    )
    bot.kill9()
    bot.start()
    # Telegram delivers it again (as after a kill before the offset was confirmed). Sent once
    # the new bot polls: the killed bot's last getUpdates, confirming the update, may still be
    # unread in the fake's socket until then, and would drop a copy queued before it.
    message = {
        "message_id": 424242,
        "date": 1,
        "chat": {"id": 9, "type": "private", "first_name": "Ann"},
        "from": {"id": 9, "is_bot": False, "first_name": "Ann"},
        "text": "/remember only once",
        "entities": [{"type": "bot_command", "offset": 0, "length": 9}],
    }
    fake_api.send_update({"update_id": update_id, "message": message})
    before = len(fake_api.sent(9))
    notes_id = fake_api.send_text(9, "/notes")
    reply = fake_api.wait_for_sent(9, contains="Your notes", after=before, timeout=REPLY_TIMEOUT)
    assert reply.get("text") == "Your notes (1):\n1. only once"
    # The copy stands before /notes in the chat's line: both confirmed means the copy was handled.
    wait_until(lambda: fake_api.confirmed_offset > notes_id, 5, what="the copy to be confirmed")
    assert "not applied twice" in bot.output()
    assert bot.query("SELECT COUNT(*) FROM notes")[0][0] == 1
    wait_until(
        lambda: bot.query("SELECT message_count FROM users WHERE id = 9")[0][0] == 2,
        3,
        what="/remember and /notes counted, the copy not",
    )


# ----------------------------------------------------------------------------------- search
def test_search_is_ranked_and_sees_only_your_own(bot: BotUnderTest) -> None:
    bot.start()
    for text in ("the quick brown fox jumps", "fox fox fox den", "Café crème at noon", "other"):
        bot.fake.send_text(10, text)
    bot.say(10, "/remember fox hunting is banned")
    bot.fake.send_text(11, "a secret fox of someone else")
    bot.say(11, "/help")
    result = bot.say(10, "/search fox")
    lines = result.splitlines()
    assert lines[0] == "Best matches for “fox”:"
    assert len(lines) == 4, result  # three of user 10's, none of user 11's, no commands
    assert "fox fox fox den" in lines[1], "the densest match ranks first"
    assert any("📝 note" in line and "hunting" in line for line in lines)
    assert "secret" not in result
    assert "Café crème" in bot.say(10, "/search cafe CREME")  # diacritics and case fold
    assert "den" in bot.say(10, "/search fo de")  # prefixes
    assert bot.say(10, "/search zebra") == "Nothing found for “zebra”."
    for empty in ("/search", "/search   ", "/search !!! ???", "/search 🚀"):
        assert bot.say(10, empty).startswith("Send /search with some words")
    assert bot.say(10, "/search " + "fox " * 2000).startswith("Best matches")


# ---------------------------------------------------------------- history, edits, kinds
def test_history_edits_kinds_stats_and_export(bot: BotUnderTest, fake_api: FakeTelegramAPI) -> None:
    bot.start()
    fake_api.send_text(12, "before the edit")
    bot.say(12, "/remember keep this")
    (message_id,) = wait_until(
        lambda: bot.query("SELECT message_id FROM messages WHERE text = 'before the edit'"),
        5,
        what="the message",
    )[0]
    fake_api.send_edit(12, message_id, "after the edit")
    photo = [{"file_id": "p1", "file_unique_id": "u1", "width": 1, "height": 1}]
    fake_api.send_message(12, photo=photo, caption="sunset photo")
    fake_api.send_message(
        12,
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
    fake_api.send_message(12, location={"latitude": 1.5, "longitude": 2.5})
    stats = bot.say(12, "/stats")
    assert "Messages: 6 (text 3, location 1, photo 1, sticker 1)" in stats, stats
    assert "Edited: 1" in stats and "Notes: 1" in stats and "First seen: " in stats
    wait_until(
        lambda: (
            bot.query(
                "SELECT text, edited_at IS NOT NULL FROM messages WHERE message_id = ?", message_id
            )
            == [("after the edit", 1)]
        ),
        3,
        what="the edit stored",
    )
    assert "after the edit" in bot.say(12, "/search edit")
    assert "Nothing found" in bot.say(12, "/search before")
    assert "sunset" in bot.say(12, "/search sunset")

    before = len(fake_api.sent(12))
    fake_api.send_text(12, "/export")
    record = fake_api.wait_for_sent(12, after=before, timeout=REPLY_TIMEOUT)
    assert record["method"] == "sendDocument"
    assert record["filename"] == "erixcast-export-12.json.gz"
    document = json.loads(gzip.decompress(record["document"]).decode("utf-8"))
    assert document["format"] == "erixcast-export/1"
    assert document["user"]["id"] == 12
    assert [n["text"] for n in document["notes"]] == ["keep this"]
    texts = [m["text"] for m in document["messages"]]
    assert "after the edit" in texts and "sunset photo" in texts
    assert {m["kind"] for m in document["messages"]} >= {"text", "photo", "sticker", "location"}


# --------------------------------------------------------------------------------- deleteme
def test_deleteme_asks_then_erases_every_row_of_that_user(
    bot: BotUnderTest, fake_api: FakeTelegramAPI
) -> None:
    bot.start()
    bot.say(13, "/remember a note")
    fake_api.send_text(13, "some history")
    bot.say(13, "/remember")  # a conversation in progress, with user_data
    bot.say(13, "a draft")
    bot.say(14, "/remember someone else's note")
    wait_until(lambda: bot.user_rows(13)["persistence"] >= 2, 3, what="13's state stored")

    question = bot.say(13, "/deleteme")
    assert "cannot be undone" in question
    asked = fake_api.sent(13)[-1]
    buttons = asked["params"]["reply_markup"]["inline_keyboard"][0]
    assert [b["callback_data"] for b in buttons] == ["deleteme:yes", "deleteme:no"]

    before = len(fake_api.sent(13))
    fake_api.send_callback(13, "deleteme:no", asked["result"])
    assert fake_api.wait_for_sent(13, after=before)["text"] == "Nothing was erased."
    assert bot.user_rows(13)["notes"] == 1

    before = len(fake_api.sent(13))
    fake_api.send_callback(13, "deleteme:yes", asked["result"])
    done = fake_api.wait_for_sent(13, after=before)
    assert done["method"] == "editMessageText" and done["text"].startswith("Done: I erased")
    wait_until(
        lambda: not any(bot.user_rows(13).values()),
        3,
        what=f"no row of user 13 (left: {bot.user_rows(13)})",
    )
    assert bot.user_rows(14)["notes"] == 1, "another user's data stays"
    assert fake_api.calls("answerCallbackQuery")
    # Later writes do not bring anything back.
    bot.say(14, "/notes")
    bot.stop()
    assert not any(bot.user_rows(13).values())
    bot.start()
    assert bot.say(13, "/start").startswith("Hello, Ann! Nice to meet you.")
    assert bot.say(13, "/notes") == "No notes yet. Save one with /remember <text>."


# ------------------------------------------------------------------------------- bad input
def test_bad_input_never_crashes_or_loses_a_message(
    bot: BotUnderTest, fake_api: FakeTelegramAPI
) -> None:
    bot.start()
    odd = [
        "",  # empty text
        " ",
        "\u200b\u200f\u202e reversed",
        "NUL \x00 inside",
        "lone surrogate \ud800 here",
        "🚀" * 3000,
        "x" * 10000,
        "/",
        "/@",
        "/start@other_bot",
    ]
    for text in odd:
        fake_api.send_text(15, text)
    assert "Sorry, I don't know /nope" in bot.say(15, "/nope", contains="/nope")
    assert "Sorry, I don't know /x." in bot.say(15, "/x@erixcast_test_bot", contains="/x.")
    assert bot.say(15, "/remember \ud800 odd", contains="Noted").startswith("Noted as #1")
    assert "odd" in bot.say(15, "/notes", contains="Your notes")
    # Updates of kinds the bot does not handle, and messages without a sender.
    user = {"id": 15, "is_bot": False, "first_name": "Ann"}
    fake_api.send_update({"inline_query": {"id": "q", "from": user, "query": "x", "offset": ""}})
    fake_api.send_update(
        {
            "channel_post": {
                "message_id": 1,
                "date": 1,
                "chat": {"id": -1001, "type": "channel"},
                "text": "a channel post",
            }
        }
    )
    fake_api.send_update(
        {
            "poll": {
                "id": "p",
                "question": "?",
                "options": [],
                "total_voter_count": 0,
                "is_closed": False,
                "is_anonymous": True,
                "type": "regular",
                "allows_multiple_answers": False,
            }
        }
    )
    fake_api.send_update({"update_id": 10**12, "bogus": {"nothing": "known"}})
    fake_api.send_update({"message": {"message_id": 5, "chat": {"id": 15}}})  # unreadable
    # Personal commands in a group are politely redirected.
    bot.fake.send_text(15, "/notes", chat_id=-500)
    assert bot.fake.wait_for_sent(-500, contains="Let's do that in a private chat")
    assert bot.say(15, "/start", contains="Welcome").startswith("Welcome back")
    assert bot.proc is not None and bot.proc.popen.poll() is None
    # Every text message made it into the history (the unreadable update excepted).
    expected = len(odd) + 6
    wait_until(
        lambda: bot.query("SELECT COUNT(*) FROM messages WHERE user_id = 15")[0][0] == expected,
        5,
        what=f"{expected} messages stored",
    )
    stored = {row[0] for row in bot.query("SELECT text FROM messages WHERE user_id = 15")}
    # NUL, which PostgreSQL's text cannot hold, is kept as U+FFFD on both databases.
    assert "lone surrogate \ufffd here" in stored and "NUL \ufffd inside" in stored
    output = bot.output()
    assert "Traceback" not in output
    assert "skipping update" in output and "cannot be read" in output


# ----------------------------------------------------------------------------------- admin
class WatchdogStub:
    """The watchdog's loopback admin API, as the bot sees it: /status, /backup, /backups."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.requests: list[tuple[str, str, str | None]] = []
        self.backup_error: str | None = None
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self.port = free_port()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> WatchdogStub:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_get("/status", self._status)
        app.router.add_post("/backup", self._backup)
        app.router.add_get("/backups", self._backups)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization")
        self.requests.append((request.method, request.path, header))
        return header == f"Bearer {self.secret}"

    async def _status(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"error": "unauthorized"}, status=401)
        return web.json_response(
            {
                "status": "healthy",
                "database": {
                    "type": "sqlite",
                    "size_mb": 1.2,
                    "integrity": "ok",
                    "last_backup": "2025-03-01T12:00:00+00:00",
                    "records": 10,
                },
                "storage": {"disk_usage_percent": 12.5, "persistent_disk": True},
                "bot": {"status": "running", "pid": 4242, "restarts": 0},
                "backups": {"tiers": {"hourly": {"id": "h1"}, "daily": None}, "offsite": None},
                "checks": {
                    "disk": {"status": "ok", "detail": "12%"},
                    "offsite": {"status": "warn", "detail": "not configured"},
                },
            }
        )

    async def _backup(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"error": "unauthorized"}, status=401)
        if self.backup_error:
            return web.json_response({"error": self.backup_error}, status=500)
        return web.json_response(
            {
                "id": "manual-20250301T120000Z",
                "tier": "manual",
                "size_bytes": 1_258_291,
                "created_at": "2025-03-01T12:00:00+00:00",
                "sha256": "ab" * 32,
                "rows": {"users": 3, "messages": 40},
            }
        )

    async def _backups(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"error": "unauthorized"}, status=401)
        entry = {"id": "hourly-1", "created_at": "x", "size_bytes": 2048, "age_s": 600}
        tiers = {t: None for t in ("daily", "weekly", "deploy", "restart", "shutdown", "manual")}
        return web.json_response({"tiers": {"hourly": entry, **tiers}})


@pytest.fixture
def watchdog_stub() -> Iterator[WatchdogStub]:
    with WatchdogStub("per-run-secret-" + "s3cr3t" * 4) as stub:
        yield stub


def test_admin_commands_for_admins_only(
    processes: ProcessPool, fake_api: FakeTelegramAPI, tmp_path: Path, watchdog_stub: WatchdogStub
) -> None:
    bot = BotUnderTest(
        processes,
        fake_api,
        tmp_path,
        ADMIN_IDS="100",
        ERIXCAST_WATCHDOG_URL=watchdog_stub.url,
        ERIXCAST_WATCHDOG_SECRET=watchdog_stub.secret,
    )
    bot.start()
    for command in ("/status", "/backup", "/backups"):
        assert bot.say(200, command) == "Sorry, that command is for the bot's administrators only."
    assert watchdog_stub.requests == [], "a refused command never reaches the watchdog"
    assert "/backup" not in bot.say(200, "/help")
    assert "/backup – take a backup now" in bot.say(100, "/help")

    status = bot.say(100, "/status")
    assert status.splitlines()[0] == "Status: healthy"
    assert "Database: sqlite, 1.2 MB, integrity ok" in status
    assert "Checks: 1 of 2 ok; offsite (warn: not configured)" in status
    assert bot.say(100, "/backup") == "Taking a backup now…"
    done = bot.fake.wait_for_sent(100, contains="Backup manual-", timeout=REPLY_TIMEOUT)["text"]
    assert done.startswith("Backup manual-20250301T120000Z done: 1.2 MB, 43 rows, sha256 abab")
    listing = bot.say(100, "/backups")
    assert "hourly: hourly-1, 10 min ago, 2.0 KB" in listing and "daily: none" in listing
    watchdog_stub.backup_error = "disk full"
    bot.say(100, "/backup")
    failed = bot.fake.wait_for_sent(100, contains="The backup failed", timeout=REPLY_TIMEOUT)
    assert "500: disk full" in failed["text"]
    assert {h for _, _, h in watchdog_stub.requests} == {f"Bearer {watchdog_stub.secret}"}
    assert watchdog_stub.secret not in bot.output()
    # Admin commands in the menu of the admin's chat.
    scoped = [c for c in fake_api.calls("setMyCommands") if "scope" in c["params"]]
    assert scoped and scoped[0]["params"]["scope"] == {"type": "chat", "chat_id": 100}


def test_admin_commands_without_a_watchdog_say_so(bot: BotUnderTest) -> None:
    bot.env["ADMIN_IDS"] = "100"
    bot.start()
    assert bot.say(100, "/status").startswith("No status: this bot runs without its watchdog")
    bot.env["ERIXCAST_WATCHDOG_URL"] = f"http://127.0.0.1:{free_port()}"
    bot.env["ERIXCAST_WATCHDOG_SECRET"] = "x" * 20
    bot.stop()
    bot.start()
    assert "cannot reach the watchdog for /status" in bot.say(100, "/status")
