"""Fairness: updates per second with 1, 20 and 200 chats at once, and a quiet user's reply
latency while a heavy user floods — with the code before issue 13 (one update at a time,
replies retried inside the handler) and with this checkout's (chats side by side, replies in
per-chat lanes after the commit), in the same run, interleaved.

Each run is ``python -m bot`` against the fake Bot API over a fresh data directory. The rate
limit is set out of the way (``RATE_LIMIT_*``), so the rows measure the handling itself; with
the defaults a flood is cut at 30 updates, which helps the quiet user further.
"""

from __future__ import annotations

import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from tests.bench.botproc import UNLIMITED, polling_bot
from tests.bench.report import Table
from tests.bench.trees import BEFORE_ISSUE_13, code_at
from tests.fakes.telegram_api import FakeTelegramAPI
from tests.helpers import REPO, base_env, free_port, wait_until

HEAVY, QUIET = 900_001, 900_002


@contextlib.contextmanager
def running_bot(code: Path, root: Path, fake: FakeTelegramAPI) -> Iterator[None]:
    data_dir = root / "data"
    env = base_env(data_dir, free_port(), TELEGRAM_BOT_TOKEN=fake.token)
    env.update(TELEGRAM_API_URL=fake.base_url, PYTHONPATH=str(code), LOG_LEVEL="WARNING")
    env.update(UNLIMITED)
    with polling_bot([sys.executable, "-m", "bot"], env, data_dir, root / "bot.log", code):
        fake.send_text(1, "/help")  # warm: the first reply loads what a reply needs
        fake.wait_for_sent(1, timeout=30)
        yield


def throughput(code: Path, root: Path, chats: int, updates: int) -> float:
    """Updates per second: ``updates`` /remember commands over ``chats`` chats, all queued at
    once, until the last reply."""
    with FakeTelegramAPI() as fake, running_bot(code, root, fake):
        before = len(fake.sent())
        started = time.monotonic()
        for n in range(updates):
            fake.send_text(1000 + n % chats, f"/remember note {n}")
        wait_until(lambda: len(fake.sent()) - before >= updates, 600, what="every reply")
        return updates / (time.monotonic() - started)


def quiet_latency(code: Path, root: Path, flood: int, with_429: bool) -> list[float]:
    """Seconds from each of the quiet user's 20 /help to its reply, sent every 50 ms while the
    heavy user's ``flood`` updates are queued (their replies answered 429 three times, 2 s each,
    when ``with_429``)."""
    with FakeTelegramAPI() as fake, running_bot(code, root, fake):
        if with_429:
            fake.fail_next("sendMessage", 429, times=3, retry_after=2, chat_id=HEAVY)
        for n in range(flood):
            fake.send_text(HEAVY, f"/remember flood {n}")
        asked: list[float] = []
        for _ in range(20):
            asked.append(time.monotonic())
            fake.send_text(QUIET, "/help")
            time.sleep(0.05)
        wait_until(lambda: len(fake.sent(QUIET)) >= 20, 600, what="the quiet user's replies")
        answered = [record["at"] for record in fake.sent(QUIET)[:20]]
        wait_until(lambda: len(fake.sent(HEAVY)) >= flood, 600, what="the flood's replies")
    return [reply - ask for ask, reply in zip(asked, answered, strict=True)]


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def run(quick: bool) -> list[Table]:
    repeats = 1 if quick else 3
    updates = 200 if quick else 600
    flood = 100 if quick else 400
    rates = Table(
        "Updates per second by chats at once (/remember, one reply each)",
        ["code", "1 chat", "20 chats", "200 chats"],
    )
    latency = Table(
        f"A quiet user's reply latency while a heavy user floods {flood} updates",
        ["code", "flood", "p50 (ms)", "p99 (ms)", "max (ms)"],
    )
    with tempfile.TemporaryDirectory(prefix="bench-fairness-") as tmp:
        scratch = Path(tmp)
        codes = {
            f"before ({BEFORE_ISSUE_13}: one at a time)": code_at(BEFORE_ISSUE_13, scratch),
            "after (chats side by side, lanes)": REPO,
        }
        measured: dict[tuple[str, str], list[float]] = {}
        run_number = 0

        def fresh() -> Path:
            nonlocal run_number
            run_number += 1
            folder = scratch / f"run-{run_number}"
            folder.mkdir()
            return folder

        for _ in range(repeats):  # interleaved: the machine's load falls on both alike
            for label, code in codes.items():
                for chats in (1, 20, 200):
                    rate = throughput(code, fresh(), chats, updates)
                    measured.setdefault((label, f"rate-{chats}"), []).append(rate)
                for with_429 in (False, True):
                    seconds = quiet_latency(code, fresh(), flood, with_429)
                    measured.setdefault((label, f"lat-{with_429}"), []).extend(seconds)
        for label in codes:
            rates.add(
                label,
                *(statistics.median(measured[(label, f"rate-{c}")]) for c in (1, 20, 200)),
            )
            for with_429 in (False, True):
                values = measured[(label, f"lat-{with_429}")]
                latency.add(
                    label,
                    "replies answered 429 (3 × 2 s)" if with_429 else "plain",
                    statistics.median(values) * 1000,
                    p99(values) * 1000,
                    max(values) * 1000,
                )
    rates.notes.append(
        f"{updates} updates queued at once, spread over the chats; medians of {repeats} "
        "interleaved runs. The rate limit is out of the way (RATE_LIMIT_BURST=1000)."
    )
    latency.notes.append(
        f"20 /help from the quiet user, one every 50 ms, sent right after the flood was queued; "
        f"{20 * repeats} samples per row (n = {repeats} runs)."
    )
    return [rates, latency]


if __name__ == "__main__":
    for printed in run(quick="--quick" in sys.argv):
        print(printed.render())
