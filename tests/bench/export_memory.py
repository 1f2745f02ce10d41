"""/export of a big history: the bot process's memory (RSS, sampled every 20 ms with psutil)
while it exports N messages, with the code of this checkout ("after") and with the code of
main before issue 13 ("before", :mod:`tests.bench.trees`; it builds the whole document in memory, so it runs only at the smaller size: at 200k messages it would take
gigabytes on a shared machine).

Each run: a database filled straight with SQL (one user, N messages of dbgen's text), ``python
-m bot`` against the fake Bot API, ``/help`` to warm it up, then ``/export`` until the document
arrives.
"""

from __future__ import annotations

import contextlib
import random
import sqlite3
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.bench.botproc import polling_bot
from tests.bench.report import Table
from tests.bench.trees import BEFORE_ISSUE_13, code_at
from tests.dbgen import sentence
from tests.fakes.telegram_api import FakeTelegramAPI
from tests.helpers import REPO, PeakRSS, base_env, free_port

USER = 51
MB = 1024 * 1024


@dataclass
class Result:
    baseline_mb: float
    grown_mb: float
    seconds: float
    document_mb: float


def fill(database: Path, messages: int) -> None:
    from bot.storage import Storage

    database.parent.mkdir(parents=True, exist_ok=True)
    Storage.open(database).close()
    rng = random.Random(messages)
    with contextlib.closing(sqlite3.connect(database)) as conn:
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute(
            "INSERT INTO users (id, first_name, first_seen, last_seen, message_count) VALUES "
            "(?, 'Big', '2026-01-01T00:00:00+00:00', '2026-01-01T00:00:00+00:00', 0)",
            (USER,),
        )
        conn.executemany(
            "INSERT INTO messages (chat_id, message_id, user_id, kind, text, sent_at) "
            "VALUES (?, ?, ?, 'text', ?, '2026-01-01T00:00:00+00:00')",
            ((USER, n, USER, f"message {n}: {sentence(rng)}") for n in range(messages)),
        )
        conn.commit()


def export_once(code: Path, messages: int, root: Path) -> Result:
    data_dir = root / "data"
    fill(data_dir / "erixcast.db", messages)
    with FakeTelegramAPI() as fake:
        env = base_env(data_dir, free_port(), TELEGRAM_BOT_TOKEN=fake.token)
        env.update(TELEGRAM_API_URL=fake.base_url, PYTHONPATH=str(code), LOG_LEVEL="WARNING")
        argv = [sys.executable, "-m", "bot"]
        with polling_bot(argv, env, data_dir, root / "bot.log", code) as bot:
            fake.send_text(USER, "/help")
            fake.wait_for_sent(USER, timeout=30)
            with PeakRSS(bot.pid) as rss:
                started = time.monotonic()
                before = len(fake.sent(USER))
                fake.send_text(USER, "/export")
                record = fake.wait_for_sent(USER, after=before, timeout=600)
            seconds = time.monotonic() - started
    document = record.get("document") or b""
    return Result(rss.baseline / MB, rss.grown_mb, seconds, len(document) / MB)


def run(quick: bool) -> list[Table]:
    small, big = (5_000, 20_000) if quick else (20_000, 200_000)
    table = Table(
        "/export: the bot's memory while it exports one user's history",
        [
            "code",
            "messages",
            "RSS before (MB)",
            "RSS growth, peak (MB)",
            "seconds",
            "document (MB)",
        ],
    )
    with tempfile.TemporaryDirectory(prefix="bench-export-") as tmp:
        root = Path(tmp)
        main = code_at(BEFORE_ISSUE_13, root)
        for label, code, messages in (
            (f"before ({BEFORE_ISSUE_13}: whole document in memory)", main, small),
            ("after (streamed, gzip)", REPO, small),
            ("after (streamed, gzip)", REPO, big),
        ):
            work = root / f"{len(table.rows)}"
            work.mkdir()
            result = export_once(code, messages, work)
            table.add(
                label,
                f"{messages:,}",
                result.baseline_mb,
                result.grown_mb,
                result.seconds,
                result.document_mb,
            )
    table.notes.append(
        f"Text from tests/dbgen.py (3–40 common words); RSS sampled every 20 ms. The code before "
        f"is not run at {big:,} messages: it holds the whole JSON document (and its copy in "
        "the upload) in memory, and past 50 MB Telegram refuses the upload anyway."
    )
    return [table]


if __name__ == "__main__":
    for printed in run(quick="--quick" in sys.argv):
        print(printed.render())
