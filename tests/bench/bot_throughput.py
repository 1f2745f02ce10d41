"""The bot end to end: updates per second through the fake Bot API, and state lost on ``kill -9``,
with our SQLitePersistence against python-telegram-bot's PicklePersistence, in the same run.

Each configuration starts ``python -m bot``'s application (the same handlers, the same SQLite
history) in its own process, over a data directory pre-filled with the stored data of N users
(their ``user_data``). Then ``active`` users each open a ``/remember`` conversation and send
``parts`` texts, all queued at once; every update gets one reply ("Got it (n parts)"), and the
clock stops at the last reply. At that instant the bot is killed with SIGKILL, restarted over the
same data (Telegram redelivers what was not confirmed), stopped with SIGTERM, and the stored
drafts are compared with what the replies acknowledged: every acknowledged part missing from the
stored draft counts as lost.

``python -m tests.bench.bot_throughput --child VARIANT`` is the bot process itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import pickle
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.bench.report import Table
from tests.fakes.telegram_api import FakeTelegramAPI
from tests.helpers import base_env, free_port, wait_until

VARIANTS = {
    "sqlite": "SQLitePersistence (ours)",
    "pickle1": "PicklePersistence, update_interval=1",
    "pickle60": "PicklePersistence, default (60 s)",
}
PICKLE_FILE = "bench-state.pickle"
GOT_IT = re.compile(r"^Got it \((\d+) parts?\)")


def stored_user_data(user_id: int) -> dict[str, Any]:
    """About 300 bytes of someone's state."""
    return {
        "profile": {"name": f"user {user_id}", "lang": "en", "tz": "Europe/Berlin"},
        "history": [f"query {user_id}-{n}" for n in range(8)],
        "counters": {1: user_id, 2: user_id * 2},
        "draft": None,
    }


# ---------------------------------------------------------------------------- preparing data
def prepare(variant: str, data_dir: Path, users: int) -> None:
    from bot.persistence import SQLitePersistence
    from bot.storage import DatabaseThread, Storage

    data_dir.mkdir(parents=True, exist_ok=True)
    thread = DatabaseThread()
    storage = thread.call(Storage.open, data_dir / "erixcast.db")  # the history lives here
    try:
        if variant == "sqlite":
            persistence = SQLitePersistence(storage, thread)

            async def fill() -> None:
                await thread.run(storage.begin_batch)
                for user_id in range(1, users + 1):
                    await persistence.update_user_data(user_id, stored_user_data(user_id))
                await thread.run(storage.commit_batch, [], _now())

            asyncio.run(fill())
        else:
            from telegram.ext import ExtBot, PicklePersistence

            pickled = PicklePersistence(data_dir / PICKLE_FILE, on_flush=True)
            # Without a bot, PicklePersistence pickles every None as "the bot" (it replaces
            # references to its bot, which is None then).
            pickled.set_bot(ExtBot("123456:prepare"))

            async def fill_pickle() -> None:
                await pickled.get_user_data()  # creates the empty structure
                for user_id in range(1, users + 1):
                    await pickled.update_user_data(user_id, stored_user_data(user_id))
                await pickled.update_bot_data({})
                await pickled.flush()

            asyncio.run(fill_pickle())
    finally:
        thread.call(storage.close)
        thread.shutdown()


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


def read_drafts(variant: str, data_dir: Path, user_ids: range) -> tuple[dict[int, int], str]:
    """Parts stored per user, and a note when the state could not be read at all."""
    if variant == "sqlite":
        import sqlite3

        from bot import codec

        with contextlib.closing(sqlite3.connect(data_dir / "erixcast.db")) as conn:
            rows = dict(conn.execute("SELECT key, value FROM persistence WHERE kind = 'user_data'"))
        drafts = {}
        for user_id in user_ids:
            value = codec.loads(rows[str(user_id)]) if str(user_id) in rows else {}
            drafts[user_id] = len(value.get("draft") or [])
        return drafts, ""
    try:
        with open(data_dir / PICKLE_FILE, "rb") as file:
            state = pickle.load(file)
    except Exception as error:  # a kill mid-write leaves a truncated file
        return dict.fromkeys(user_ids, 0), f"pickle unreadable ({type(error).__name__})"
    user_data = state.get("user_data", {})
    return {u: len((user_data.get(u) or {}).get("draft") or []) for u in user_ids}, ""


# ------------------------------------------------------------------------------- one config
@dataclass
class Result:
    updates: int
    seconds: float
    startup_s: float
    acknowledged: int
    lost: int
    note: str


class BotProcess:
    def __init__(self, variant: str, data_dir: Path, fake: FakeTelegramAPI, log: Path) -> None:
        env = base_env(
            data_dir,
            free_port(),
            TELEGRAM_BOT_TOKEN=fake.token,
            TELEGRAM_API_URL=fake.base_url,
            LOG_LEVEL="WARNING",
        )
        for key in [k for k in env if k.startswith("ERIXCAST_")]:
            del env[key]
        self.heartbeat = data_dir / "run" / "bot.heartbeat"
        with contextlib.suppress(FileNotFoundError):
            self.heartbeat.unlink()
        self._log = log.open("ab")
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "tests.bench.bot_throughput", "--child", variant],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    def wait_polling(self, timeout: float = 60) -> None:
        def ready() -> bool:
            if self.popen.poll() is not None:
                raise RuntimeError(f"the bot exited with {self.popen.returncode}")
            return self.heartbeat.exists()

        wait_until(ready, timeout, interval=0.02, what="the bot to poll")

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(20)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()


def run_config(
    variant: str, stored: int, active: int, parts: int, root: Path, budget: float = 60.0
) -> Result:
    data_dir = root / f"{variant}-{stored}" / "data"
    prepare(variant, data_dir, stored)
    users = range(1, active + 1)
    log = data_dir.parent / "bot.log"
    with FakeTelegramAPI() as fake:
        started = time.monotonic()
        bot = BotProcess(variant, data_dir, fake, log)
        try:
            bot.wait_polling()
            startup = time.monotonic() - started
            expected = active * (parts + 1)
            begin = time.monotonic()
            for user in users:
                fake.send_text(user, "/remember")
            for n in range(parts):
                for user in users:
                    fake.send_text(user, f"part {n + 1} of user {user}")
            deadline = begin + budget
            while len(fake.sent()) < expected and time.monotonic() < deadline:
                if bot.popen.poll() is not None:
                    raise RuntimeError(f"the bot exited with {bot.popen.returncode}")
                time.sleep(0.01)
            elapsed = time.monotonic() - begin
            answered = len(fake.sent())
            bot.kill()  # the instant the last reply is out (or the time budget is spent)
        finally:
            bot.kill()
        acknowledged: dict[int, int] = dict.fromkeys(users, 0)
        for record in fake.sent():
            match = GOT_IT.match(record.get("text") or "")
            if match and record["chat_id"] in acknowledged:
                acknowledged[record["chat_id"]] = max(
                    acknowledged[record["chat_id"]], int(match.group(1))
                )
        # Same procedure for every variant: restart, let it take what Telegram redelivers, stop.
        again = BotProcess(variant, data_dir, fake, log)
        note = ""
        try:
            again.wait_polling()
            wait_until(lambda: fake.pending_updates == 0, 120, what="redelivered updates")
            quiet_since, count = time.monotonic(), len(fake.sent())
            while time.monotonic() - quiet_since < 1.5:
                time.sleep(0.1)
                if len(fake.sent()) != count:
                    quiet_since, count = time.monotonic(), len(fake.sent())
        except (RuntimeError, AssertionError) as error:  # a bot that cannot start again
            note = f"restart failed: {error}"
        finally:
            again.stop()
    drafts, unreadable = read_drafts(variant, data_dir, users)
    lost = sum(max(0, acknowledged[u] - drafts.get(u, 0)) for u in users)
    return Result(
        updates=answered,
        seconds=elapsed,
        startup_s=startup,
        acknowledged=sum(acknowledged.values()),
        lost=lost,
        note="; ".join(n for n in (note, unreadable) if n),
    )


def run(quick: bool) -> list[Table]:
    sizes = (100, 1_000) if quick else (100, 10_000)
    active, parts = (30, 4) if quick else (100, 14)
    budget = 8.0 if quick else 60.0
    table = Table(
        "Bot end to end: updates/s through the fake Bot API, and state lost on kill -9",
        [
            "stored users",
            "persistence",
            "updates answered",
            "updates/s",
            "start-up s",
            "acknowledged parts",
            "lost on kill -9",
        ],
    )
    with tempfile.TemporaryDirectory(prefix="erixcast-bench-bot-") as tmp:
        for stored in sizes:
            for variant, label in VARIANTS.items():
                result = run_config(variant, stored, active, parts, Path(tmp), budget)
                lost = f"{result.lost}" + (f" ({result.note})" if result.note else "")
                table.add(
                    f"{stored:,}",
                    label,
                    result.updates,
                    result.updates / result.seconds,
                    round(result.startup_s, 2),
                    result.acknowledged,
                    lost,
                )
    table.notes.append(
        f"{active} active users each send /remember and {parts} texts "
        f"({active * (parts + 1):,} updates), all queued at once; every update is answered, the "
        f"clock stops at the last answer (or after {budget:.0f} s), and at that instant the bot "
        "is killed (SIGKILL), restarted over the same data and stopped. 'lost' counts "
        "acknowledged draft parts (replies 'Got it (n parts)') missing from the stored "
        "user_data afterwards."
    )
    table.notes.append(
        "Every variant keeps its history in SQLite through the same handlers; only the "
        "persistence (and, for ours, the durable update processing) differs."
    )
    return [table]


# ------------------------------------------------------------------------------ the child
def child(variant: str) -> int:
    from bot import lifeline
    from bot.app import run as run_bot
    from conf.layout import DataLayout
    from conf.logging import setup_logging
    from conf.settings import load_settings_or_exit

    lifeline.arm()
    settings = load_settings_or_exit("bot")
    layout = DataLayout.from_settings(settings)
    setup_logging("bot", settings.log_level, settings.secrets(), layout.logs)
    layout.ensure()
    if variant == "sqlite":
        return run_bot(settings, layout)
    from telegram.ext import PicklePersistence

    interval = 1.0 if variant == "pickle1" else 60.0

    def factory(storage: Any, db_thread: Any) -> PicklePersistence:
        return PicklePersistence(layout.root / PICKLE_FILE, update_interval=interval)

    return run_bot(settings, layout, persistence_factory=factory, durable=False)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.bot_throughput")
    parser.add_argument("--child", choices=sorted(VARIANTS), help="run the bot (internal)")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.child:
        return child(args.child)
    for table in run(args.quick):
        print(table.render())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
