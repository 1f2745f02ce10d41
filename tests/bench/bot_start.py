"""The bot's start-up and memory, this tree beside an older one in the same run (issue 14).

1. Exec → first answer: ``python -m bot`` started alone (no watchdog) over a small data
   directory made by a first start, with a ``/start`` already waiting in the fake Bot API; the
   clock runs from ``Popen`` to the reply reaching the fake. Runs alternate between the trees.
2. Idle RSS: the same bot, ``IDLE_SECONDS`` after that answer (``psutil`` RSS, not tracemalloc).
3. Detection → answer after a recovery: a real watchdog (``python -m watchdog run``) on a
   damaged bot database with a verified backup, as ``tests.bench.recovery`` measures it (its
   stack, fill and damage are reused), for each tree.

``BOT_START_OLD=/tmp/old-bot`` names the older tree (a ``git worktree add --detach`` of the
commit before, with the ``.venv`` symlink); without it only this tree is measured. Both trees run
on this interpreter, each with its own ``PYTHONPATH`` and working directory.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from tests.bench import recovery
from tests.bench.report import Table
from tests.helpers import REPO, base_env, free_port

MB = 1_048_576
IDLE_SECONDS = 5.0
ANSWER_TIMEOUT = 120.0
BOT = [sys.executable, "-m", "bot"]


def _trees() -> dict[str, Path]:
    trees = {"this tree": REPO}
    old = os.environ.get("BOT_START_OLD")
    if old:
        trees = {"before": Path(old).resolve(), **trees}
    return trees


def _load() -> str:
    return "load average " + " ".join(f"{value:.2f}" for value in os.getloadavg())


def run(quick: bool) -> list[Table]:
    from tests.fakes.telegram_api import FakeTelegramAPI

    trees = _trees()
    starts = 2 if quick else 5
    work = Path(tempfile.mkdtemp(prefix="bench-bot-start-"))
    try:
        with FakeTelegramAPI() as fake:
            load_before = _load()
            answers, idle = _start_and_idle(work, fake, trees, starts)
            load_after = _load()
        tables = [_start_table(answers, idle, starts, load_before, load_after)]
        tables.append(_recovery_table(work / "recovery", trees, quick))
        return tables
    finally:
        shutil.rmtree(work, ignore_errors=True)


# ------------------------------------------------------------------ the bot alone


def _bot_env(tree: Path, data: Path, fake) -> dict[str, str]:
    env = base_env(data, free_port(), TELEGRAM_BOT_TOKEN=fake.token, TELEGRAM_API_URL=fake.base_url)
    env["PYTHONPATH"] = str(tree)
    return env


def _one_start(tree: Path, data: Path, fake, uid: int, log: Path) -> tuple[float, int]:
    """Seconds from exec to the answer of a waiting /start, and RSS after idling."""
    sent = len(fake.sent(uid))
    fake.send_text(uid, "/start", first_name=f"Start{uid}")
    with log.open("ab") as out:
        began = time.monotonic()
        bot = subprocess.Popen(
            BOT,
            cwd=tree,
            env=_bot_env(tree, data, fake),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        try:
            fake.wait_for_sent(uid, contains=f"Start{uid}", timeout=ANSWER_TIMEOUT, after=sent)
            answered = time.monotonic() - began
            time.sleep(IDLE_SECONDS)  # a benchmark's settle time, not a test's wait
            rss = psutil.Process(bot.pid).memory_info().rss
            return answered, rss
        finally:
            bot.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                bot.wait(30)
            if bot.poll() is None:
                bot.kill()
                bot.wait(10)


def _start_and_idle(
    work: Path, fake, trees: dict[str, Path], starts: int
) -> tuple[dict[str, list[float]], dict[str, list[int]]]:
    answers: dict[str, list[float]] = {name: [] for name in trees}
    idle: dict[str, list[int]] = {name: [] for name in trees}
    uid = 800_000
    for name, tree in trees.items():  # a first start makes the schema (not measured)
        uid += 1
        _one_start(tree, work / name / "data", fake, uid, work / f"{name}.log")
    for _ in range(starts):
        for name, tree in trees.items():
            uid += 1
            answered, rss = _one_start(tree, work / name / "data", fake, uid, work / f"{name}.log")
            answers[name].append(answered)
            idle[name].append(rss)
    return answers, idle


def _start_table(
    answers: dict[str, list[float]],
    idle: dict[str, list[int]],
    starts: int,
    load_before: str,
    load_after: str,
) -> Table:
    table = Table(
        "The bot's start-up and idle memory",
        [
            "tree",
            "exec → first answer, median (s)",
            "min",
            "max",
            "idle RSS, median (MB)",
            "min",
            "max",
        ],
    )
    for name, times in answers.items():
        rss = [value / MB for value in idle[name]]
        table.add(
            name,
            statistics.median(times),
            min(times),
            max(times),
            statistics.median(rss),
            min(rss),
            max(rss),
        )
    table.notes.append(
        f"n = {starts} starts per tree, alternating; `python -m bot` alone over a small data "
        f"directory, a `/start` waiting in the fake Bot API; RSS {IDLE_SECONDS:.0f} s after the "
        f"answer. {load_before} before, {load_after} after (2 cores)."
    )
    return table


# ------------------------------------------------------------------ after a recovery


class _TreeStack(recovery._Stack):
    """recovery's stack, its watchdog (and so its bot) run from ``tree``."""

    def __init__(self, work: Path, fake, tree: Path) -> None:
        super().__init__(work, fake)
        self.tree = tree
        self.env["PYTHONPATH"] = str(tree)

    def start(self) -> float:
        self.starts += 1
        started = time.time()
        self.proc = recovery.Proc(
            recovery.WATCHDOG, self.env, self.tree, self.work / f"watchdog-{self.starts}.log"
        )
        return started


def _recovery_table(work: Path, trees: dict[str, Path], quick: bool) -> Table:
    from tests.fakes.telegram_api import FakeTelegramAPI

    size = 5 * MB if quick else 100 * MB
    repeats = 1 if quick else 3
    results: dict[str, list[recovery.Timing]] = {name: [] for name in trees}
    loads: list[str] = []
    with FakeTelegramAPI() as fake:
        stacks = {}
        for name, tree in trees.items():
            stack = _TreeStack(work / name, fake, tree)
            stack.work.mkdir(parents=True)
            recovery._first_start(stack)
            recovery._fill_bot_database(stack.layout.database, size)
            recovery._checkpoint(stack.layout.database)
            recovery._remove_companions(stack.layout.database)
            keeper = recovery.BackupKeeper(
                stack.layout,
                keep=dict.fromkeys(recovery.TIERS, 50),
                min_free_bytes=0,
                app_version=recovery.app_version(),
            )
            assert keeper.take("hourly", "benchmark", time.time()).backup is not None
            pristine, state = stack.work / "pristine.db", stack.work / "pristine-state.json"
            shutil.copyfile(stack.layout.database, pristine)
            shutil.copyfile(stack.layout.state_file, state)
            stacks[name] = (stack, pristine, state)
        for _ in range(repeats):
            for name, (stack, pristine, state) in stacks.items():
                timing = recovery.Timing(name, pristine.stat().st_size, "garbage header")
                recovery._put_back(stack, pristine, state)
                recovery._damage(stack.layout.database, "garbage header")
                loads.append(_load())
                try:
                    recovery._measure(stack, timing, ANSWER_TIMEOUT)
                    timing.notes.append(_replay_events(stack))
                except (AssertionError, TimeoutError) as error:
                    timing.problem = str(error).splitlines()[0][:200]
                finally:
                    stack.kill()
                results[name].append(timing)
    table = Table(
        f"Detection → answer after a recovery ({size // MB} MB, garbage header)",
        [
            "tree",
            "detection → answer, median (s)",
            "min",
            "max",
            "recovered → bot launched (median s)",
            "bot launched → answer (median s)",
        ],
    )
    for name, timings in results.items():
        done = [t for t in timings if t.detection_to_answer is not None]
        if not done:
            table.add(name, "?", "?", "?", "?", "?")
            continue
        totals = [t.detection_to_answer for t in done]
        launch = [
            t.launched_s - t.recovered_at_s
            for t in done
            if t.launched_s is not None and t.recovered_at_s is not None
        ]
        answer = [t.answered_s - t.launched_s for t in done if t.launched_s is not None]
        table.add(
            name,
            statistics.median(totals),  # type: ignore[type-var]
            min(totals),  # type: ignore[type-var]
            max(totals),  # type: ignore[type-var]
            statistics.median(launch) if launch else "?",
            statistics.median(answer) if answer else "?",  # type: ignore[operator]
        )
    table.notes.append(
        f"n = {repeats} per tree, alternating; a real watchdog and bot on 127.0.0.1, the fake "
        "Bot API; `tests.bench.recovery`'s stack (a verified hourly backup, the header "
        "overwritten, a `/start` waiting). Loads at each run: " + "; ".join(loads) + "."
    )
    for name, timings in results.items():
        for t in timings:
            if t.problem:
                table.notes.append(f"{name}: {t.problem}")
    return table


def _replay_events(stack: _TreeStack) -> str:
    with contextlib.suppress(Exception):
        events = stack.stats().get("events", [])
        return "; ".join(e["message"][:120] for e in events if "replay" in e["message"])
    return ""


if __name__ == "__main__":
    quick = "--quick" in sys.argv
    for table in run(quick):
        print(table.render(), flush=True)
