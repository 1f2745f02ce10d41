"""Memory of what runs: the real stack (supervisord → watchdog → bot, and the fatal listener)
started as Render starts it, and ``python -m watchdog backup`` typed at a terminal beside it.
Every process's RSS is sampled with psutil every 50 ms over supervisord's whole process tree and
the command's; the table gives each role's peak and the peak of their sum (one sample, all
processes at once), idle and during the backups. Alone: ``python -m tests.bench.stack_memory
[MB] [RUNS]`` (default 100 MB, 3 backups) prints the table. The watchdog's workers (``python -m
watchdog.data.…``: the integrity check's, the snapshot's) are a role of their own, summed over
those alive at one sample, and any process of no known role is counted as "other": the total is
the sum of the columns' processes, none left out."""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import psutil

from tests.bench.recovery import START_TIMEOUT, _Stack
from tests.bench.report import Table
from tests.helpers import REPO, VENV_BIN, Proc, wait_until

TARGET_MB = 200
ROLES = ("supervisord", "watchdog", "workers", "bot", "listener", "terminal backup", "other")
SAMPLE_EVERY = 0.05
IDLE_S = 3.0
MB = 1024 * 1024
SUPERVISORD = [str(VENV_BIN / "supervisord"), "-c", str(REPO / "supervisord.conf")]


def role(process: psutil.Process) -> str:
    try:
        argv = process.cmdline()
    except psutil.Error:
        return "?"
    text = " ".join(argv)
    if any(arg.startswith("watchdog.data.") for arg in argv):
        return "workers"
    if "supervisord" in text:
        return "supervisord"
    if "watchdog.fatal_listener" in text:
        return "listener"
    if "-m" in argv and "bot" in argv:
        return "bot"
    if "watchdog" in argv and "run" in argv:
        return "watchdog"
    if "watchdog" in argv and "backup" in argv:
        return "terminal backup"
    return "other"


class Sampler:
    """Peaks of every role's processes under ``roots`` (and their descendants), each role's RSS
    summed over its processes alive at one sample, and the peak of the whole sum; ``most`` is
    how many processes of a role were alive at once."""

    def __init__(self, roots: list[int]) -> None:
        self.roots = list(roots)
        self.peaks: dict[str, float] = defaultdict(float)
        self.most: dict[str, int] = defaultdict(int)
        self.mapped: dict[str, float] = defaultdict(float)
        """Of each role's peak, the file-backed pages (``RssFile``: mapped libraries, and any
        file mapped), shared with the page cache."""
        self.total = 0.0
        self.samples = 0
        self.others: set[str] = set()
        """What the processes of no known role were (their command, shortened)."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(SAMPLE_EVERY)

    def sample(self) -> None:
        now: dict[str, float] = defaultdict(float)
        mapped: dict[str, float] = defaultdict(float)
        count: dict[str, int] = defaultdict(int)
        seen: set[int] = set()
        for pid in list(self.roots):
            try:
                root = psutil.Process(pid)
                family = [root, *root.children(recursive=True)]
            except psutil.Error:
                continue
            for process in family:
                if process.pid in seen:
                    continue
                seen.add(process.pid)
                try:
                    memory = process.memory_info()
                except psutil.Error:
                    continue
                name = role(process)
                if name == "other":
                    self.others.add(_command(process))
                now[name] += memory.rss / MB
                mapped[name] += getattr(memory, "shared", 0) / MB
                count[name] += 1
        for name, rss in now.items():
            if rss > self.peaks[name]:
                self.peaks[name], self.mapped[name] = rss, mapped[name]
            self.most[name] = max(self.most[name], count[name])
        self.total = max(self.total, sum(now.values()))
        self.samples += 1


def measure(stack: _Stack, runs: int, label: str) -> tuple[Table, float]:
    """The stack under supervisord, idle then during ``runs`` terminal backups; the table and
    the peak total during the backups (MB)."""
    table = Table(
        f"Memory of every process during a terminal `backup` ({label}, psutil, peak RSS MB)",
        ["phase", *ROLES, "**total**"],
    )
    supervisord = Proc(SUPERVISORD, stack.env, REPO, stack.work / "supervisord.log")
    try:
        wait_until(
            lambda: (
                stack.health()["bot"]["status"] == "running" and stack.layout.admin_file.is_file()
            ),
            timeout=START_TIMEOUT * 4,
            interval=0.5,
            what="the stack up under supervisord",
        )
        with Sampler([supervisord.pid]) as idle:
            time.sleep(IDLE_S)
        _row(table, "idle", idle)
        during = Sampler([supervisord.pid])
        with during:
            for _ in range(runs):
                command = subprocess.Popen(
                    [sys.executable, "-m", "watchdog", "backup"],
                    cwd=REPO,
                    env=stack.env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                )
                during.roots.append(command.pid)
                try:
                    _, err = command.communicate(timeout=900)
                finally:
                    if command.poll() is None:
                        command.kill()
                        command.wait(10)
                    during.roots.remove(command.pid)
                assert command.returncode == 0, err.decode()[-2000:]
        _row(table, f"during {runs} terminal backups", during)
        table.notes.append(
            "Real processes: supervisord (supervisord.conf) runs the watchdog and the fatal "
            "listener, the watchdog the bot; the terminal backup asks the running watchdog "
            "(admin API), which takes the backup. workers: the watchdog's `python -m "
            "watchdog.data.…` children (integrity check, snapshot), summed over those alive at "
            "one sample (×N: most alive at once). A role's peak and the total's need not be "
            "the same sample."
        )
        table.notes.append(
            "File-backed pages (RssFile: libraries, mapped files) in each role's peak during the "
            "backups: "
            + ", ".join(
                f"{name} {during.mapped[name]:.0f}" for name in ROLES if name in during.peaks
            )
            + " MB; the rest is the process's own memory."
        )
        if during.others:
            table.notes.append(f"other: {', '.join(sorted(during.others))}.")
        if "workers" in during.peaks:
            table.notes.append(
                f"Of the workers' {during.peaks['workers']:.0f} MB, "
                f"{during.mapped['workers']:.0f} MB are file-backed pages (RssFile: libraries, "
                "and any mapped file), shared with the page cache and "
                "counted once per worker."
            )
        return table, during.total
    finally:
        supervisord.popen.send_signal(signal.SIGTERM)
        try:
            supervisord.wait(60)
        except subprocess.TimeoutExpired:
            pass
        supervisord.kill_tree()


def _command(process: psutil.Process) -> str:
    try:
        argv = process.cmdline()
    except psutil.Error:
        return "?"
    if not argv:
        return "a process ending (no command line left)"
    return " ".join([argv[0].rsplit("/", 1)[-1], *argv[1:3]])[:60]


def cell(sampler: Sampler, name: str) -> str:
    if name not in sampler.peaks:
        return "—"
    most = sampler.most[name]
    return f"{sampler.peaks[name]:.0f}" + (f" (×{most})" if most > 1 else "")


def _row(table: Table, phase: str, sampler: Sampler) -> None:
    table.add(phase, *(cell(sampler, name) for name in ROLES), f"{sampler.total:.0f}")


def main(argv: list[str]) -> int:
    """The stack at ``argv[0]`` MB (100), idle then during ``argv[1]`` (3) terminal backups."""
    from tests.bench.recovery import (
        _checkpoint,
        _fill_bot_database,
        _first_start,
        _label,
        _remove_companions,
    )
    from tests.fakes.telegram_api import FakeTelegramAPI

    size = int(float(argv[0]) * MB) if argv else 100 * MB
    runs = int(argv[1]) if len(argv) > 1 else 3
    fake = FakeTelegramAPI()
    fake.start()
    with tempfile.TemporaryDirectory(prefix="stack-memory-") as work:
        stack = _Stack(Path(work) / "stack", fake)
        stack.env["SHUTDOWN_BUDGET"] = "1"
        try:
            stack.work.mkdir()
            _first_start(stack)
            _fill_bot_database(stack.layout.database, size)
            _checkpoint(stack.layout.database)
            _remove_companions(stack.layout.database)
            table, peak = measure(stack, runs, _label(size))
        finally:
            stack.kill()
            fake.stop()
    print(table.render())
    print(f"peak total {peak:.0f} MB (target ≤ {TARGET_MB} MB)")
    return 0 if peak <= TARGET_MB else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
