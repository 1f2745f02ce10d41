"""The update journal's cost and its replay.

- Throughput: the real bot process (``python -m bot``'s application) takes a burst of text
  messages from many users through the fake Bot API, with and without the journal, interleaved,
  n runs each; updates/s counts until Telegram was told the last one is done (the confirmed
  offset passed it). Target: with the journal ≥ 0.9× without.
- Bytes per update: the journal's size after the burst over the updates it holds.
- Replay: a database of the bot at 100 MB and 1 GB (``tests.dbgen``) restored by
  ``python -m watchdog restore latest --yes`` from a verified backup, then ``python -m bot
  replay`` of the journal's updates written after it: updates/s, and replay's share of the
  restore + replay time.

``python -m tests.bench.journal --child on|off`` is the bot process itself.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from conf.journal import UPDATE, JournalEntry, JournalWriter, journal_bytes, read_journal
from conf.units import MIB
from tests import dbgen
from tests.bench.botproc import UNLIMITED, polling_bot
from tests.bench.report import Table
from tests.fakes.telegram_api import FakeTelegramAPI
from tests.helpers import base_env, free_port, wait_until


def bot_env(data_dir: Path, fake: FakeTelegramAPI | None = None) -> dict[str, str]:
    env = base_env(
        data_dir,
        free_port(),
        TELEGRAM_BOT_TOKEN=fake.token if fake else "123456:ABCdefGHIjklMNOpqrSTUvwxYZ123456789",
        TELEGRAM_API_URL=fake.base_url if fake else "http://127.0.0.1:9",
        LOG_LEVEL="WARNING",
        **UNLIMITED,
    )
    for key in [k for k in env if k.startswith("ERIXCAST_")]:
        del env[key]
    return env


def burst_rate(journaled: bool, users: int, per_user: int, root: Path) -> tuple[float, int, int]:
    """(updates/s, updates, journal bytes) for one run of a fresh bot."""
    data_dir = root / f"{'on' if journaled else 'off'}-{time.monotonic_ns()}" / "data"
    data_dir.mkdir(parents=True)
    argv = [sys.executable, "-m", "tests.bench.journal", "--child", "on" if journaled else "off"]
    log = data_dir.parent / "bot.log"
    with FakeTelegramAPI() as fake, polling_bot(argv, bot_env(data_dir, fake), data_dir, log):
        count = users * per_user
        begin = time.monotonic()
        last = 0
        for n in range(per_user):
            for user in range(1, users + 1):
                last = fake.send_text(user, f"message {n} of user {user}: " + "x" * 60)
        wait_until(lambda: fake.confirmed_offset > last, 300, interval=0.005, what="acks")
        elapsed = time.monotonic() - begin
    return count / elapsed, count, journal_bytes(data_dir / "journal")


def throughput(quick: bool, root: Path) -> Table:
    users, per_user, rounds = (20, 10, 1) if quick else (50, 40, 3)
    rates: dict[bool, list[float]] = {True: [], False: []}
    sizes: list[float] = []
    for _ in range(rounds):
        for journaled in (False, True):  # interleaved: the machine's drift hits both alike
            rate, count, size = burst_rate(journaled, users, per_user, root)
            rates[journaled].append(rate)
            if journaled:
                sizes.append(size / count)
    on, off = statistics.median(rates[True]), statistics.median(rates[False])
    ratio = on / off
    table = Table(
        f"Journal cost: {users} users × {per_user} text messages at once, n={rounds} each",
        ["configuration", "updates/s (median)", "runs", "journal bytes/update"],
    )
    table.add("without the journal", f"{off:.0f}", " ".join(f"{r:.0f}" for r in rates[False]), "–")
    table.add(
        "with the journal", f"{on:.0f}", " ".join(f"{r:.0f}" for r in rates[True]),
        f"{statistics.median(sizes):.0f}",
    )  # fmt: skip
    verdict = "met" if ratio >= 0.9 else "MISSED"
    table.notes.append(f"with / without = {ratio:.2f}× (target ≥ 0.9×: {verdict})")
    return table


def raw_update(update_id: int, user: int, at: float) -> dict:
    return {
        "update_id": update_id,
        "message": {
            "message_id": 50_000_000 + update_id,
            "date": int(at),
            "chat": {"id": user, "type": "private", "first_name": f"User{user}"},
            "from": {"id": user, "is_bot": False, "first_name": f"User{user}"},
            "text": f"after the backup {update_id}: " + "y" * 60,
        },
    }


def replay_at(size: int, updates: int, root: Path) -> tuple[float, float]:
    """(restore seconds, replay seconds) for a database of ``size`` bytes."""
    data_dir = root / f"replay-{size}" / "data"
    data_dir.mkdir(parents=True)
    database = data_dir / "erixcast.db"
    dbgen.create_bot(database, size)
    env = bot_env(data_dir)
    made = subprocess.run(
        [sys.executable, "-m", "watchdog", "backup"], env=env, capture_output=True, timeout=1800
    )
    if made.returncode:
        raise RuntimeError(made.stderr.decode(errors="replace")[-500:])
    writer = JournalWriter(data_dir / "journal")
    writer.open()
    now = time.time()
    for first in range(1, updates + 1, 100):
        writer.append(
            [
                JournalEntry(UPDATE, uid, now, 1 + uid % 500, raw_update(uid, 1 + uid % 500, now))
                for uid in range(first, min(first + 100, updates + 1))
            ]
        )
    writer.close()
    started = time.monotonic()
    restored = subprocess.run(
        [sys.executable, "-m", "watchdog", "restore", "latest", "--yes"],
        env=env,
        capture_output=True,
        timeout=1800,
    )
    restore_s = time.monotonic() - started
    if restored.returncode:
        raise RuntimeError(restored.stderr.decode(errors="replace")[-500:])
    started = time.monotonic()
    replayed = subprocess.run(
        [sys.executable, "-m", "bot", "replay"], env=env, capture_output=True, timeout=1800
    )
    replay_s = time.monotonic() - started
    if replayed.returncode:
        raise RuntimeError(replayed.stdout.decode(errors="replace")[-500:])
    assert len(read_journal(data_dir / "journal").updates) == updates
    shutil.rmtree(data_dir.parent, ignore_errors=True)
    return restore_s, replay_s


def replay(quick: bool, root: Path) -> Table:
    sizes = [5 * MIB] if quick else [100 * MIB, 1024 * MIB]
    updates = 500 if quick else 5000
    table = Table(
        f"Replay of {updates} journaled updates after a restore (whole processes, n=1 per size)",
        ["database", "restore latest (s)", "replay (s)", "replay updates/s", "replay's share"],
    )
    for size in sizes:
        restore_s, replay_s = replay_at(size, updates, root)
        table.add(
            f"{size // MIB} MB",
            f"{restore_s:.2f}",
            f"{replay_s:.2f}",
            f"{updates / replay_s:.0f}",
            f"{replay_s / (restore_s + replay_s):.0%}",
        )
    table.notes.append("replay's time includes its process start (about 1 s of imports)")
    return table


def run(quick: bool) -> list[Table]:
    root = Path(tempfile.mkdtemp(prefix="erixcast-bench-journal-"))
    try:
        return [throughput(quick, root), replay(quick, root)]
    finally:
        shutil.rmtree(root, ignore_errors=True)


def child(mode: str) -> int:
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
    return run_bot(settings, layout, journaled=mode == "on")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.journal")
    parser.add_argument("--child", choices=["on", "off"], help="run the bot (internal)")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.child:
        return child(args.child)
    for table in run(args.quick):
        print(table.render())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
