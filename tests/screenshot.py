"""The README's pictures, made for real: ``make screenshot`` (``python -m tests.screenshot``).

A bot database with a week of back-dated verified backups (taken by the real BackupKeeper with
``now`` set in the past, the database growing between them, so the status page has a history to
chart), the real watchdog and bot on it against the sandbox's Bot API stand-in, a short
conversation typed into the chat page by a real headless Chromium, then both pages captured:
``docs/status-page.png`` and ``docs/chat.png``. Everything on 127.0.0.1, in a temporary folder
removed afterwards; every process is stopped.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from conf.layout import DataLayout
from conf.settings import load_settings
from sandbox.bot_api import LocalBotAPI
from sandbox.chat import ChatPage
from tests import dbgen
from tests.browser import Chromium
from tests.helpers import REPO, base_env, free_port, get_json, wait_until
from watchdog.data.backups import BackupKeeper
from watchdog.version import app_version

KEEP = {tier: 200 for tier in ("hourly", "daily", "weekly", "deploy", "restart", "shutdown")}
KEEP["manual"] = 50


def grow(database: Path, rows: int, rng: random.Random) -> None:
    with sqlite3.connect(database) as connection:
        first = connection.execute("SELECT coalesce(max(message_id), 0) FROM messages").fetchone()[
            0
        ]
        connection.executemany(
            "INSERT INTO messages (chat_id, message_id, user_id, kind, text, sent_at) "
            "VALUES (?, ?, ?, 'text', ?, '2026-11-20T12:00:00+00:00')",
            [
                (uid := rng.randint(1, 200), first + n + 1, uid, dbgen.sentence(rng))
                for n in range(rows)
            ],
        )


def back_dated_week(data_dir: Path) -> None:
    """A bot database and a week of its verified backups, every 4 hours (daily ones at noon)."""
    os.environ.update(ENV_FILE=os.devnull, DATA_DIR=str(data_dir))
    layout = DataLayout.from_settings(load_settings())
    layout.ensure()
    dbgen.create_bot(layout.database, 3 * 1_048_576, users=200)
    keeper = BackupKeeper(layout, keep=KEEP, min_free_bytes=0, app_version=app_version())
    rng = random.Random(15)
    now = time.time()
    for step in range(42, 0, -1):
        at = now - step * 4 * 3600 - 1800
        grow(layout.database, 600 + rng.randint(0, 900), rng)
        keeper.take("hourly", "scheduled", at)
        if step % 6 == 0:
            keeper.take("daily", "scheduled", at + 60)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.screenshot", description=__doc__)
    parser.add_argument("--out", type=Path, default=REPO / "docs", help="default docs/")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="erixcast-screenshot-"))
    api = LocalBotAPI(bot_username="erixcast_demo_bot", bot_first_name="ErixCast")
    chat = ChatPage(api)
    api.add_routes(chat.install)
    watchdog: subprocess.Popen[bytes] | None = None
    try:
        print("a week of back-dated backups …", file=sys.stderr, flush=True)
        back_dated_week(work / "data")
        api.start()
        port = free_port()
        env = base_env(
            work / "data",
            port,
            TELEGRAM_BOT_TOKEN=api.token,
            TELEGRAM_API_URL=api.base_url,
            ADMIN_IDS=str(chat.user["id"]),
            **{f"BACKUP_KEEP_{tier.upper()}": str(n) for tier, n in KEEP.items()},
        )
        log = (work / "watchdog.log").open("ab")
        watchdog = subprocess.Popen(
            [sys.executable, "-m", "watchdog", "run"],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        health = f"http://127.0.0.1:{port}/health"
        wait_until(lambda: get_json(health)[1]["bot"]["status"] == "running", timeout=120)
        wait_until(lambda: get_json(health)[1]["backups"]["drill"]["last_at"], timeout=300)
        with Chromium(width=900, height=760) as browser:
            browser.open(f"http://127.0.0.1:{api.port}/")
            for text, shown in (
                ("/start", "Hello, Ada"),
                ("/remember buy oat milk and bread", "Noted as #1"),
                ("the bakery on Rue Cler opens at 7", "the bakery"),
                ("/search bakery", "Best matches"),
                ("/notes", "Your notes (1)"),
            ):
                browser.type_and_enter("#text", text)
                browser.wait_for_text(shown)
            browser.screenshot(args.out / "chat.png", full_page=False)
        with Chromium(width=1280, height=900) as browser:
            browser.open(f"http://127.0.0.1:{port}/")
            browser.screenshot(args.out / "status-page.png")
        print(f"wrote {args.out / 'status-page.png'} and {args.out / 'chat.png'}")
        return 0
    finally:
        if watchdog is not None:
            watchdog.send_signal(signal.SIGTERM)
            try:
                watchdog.wait(60)
            except subprocess.TimeoutExpired:
                watchdog.kill()
                watchdog.wait(10)
        api.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
