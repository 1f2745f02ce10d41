"""Memory of what runs: the real stack (supervisord → watchdog → bot, and the fatal listener)
started as Render starts it, and ``python -m watchdog backup`` typed at a terminal beside it.
Every process's RSS is sampled with psutil every 50 ms over supervisord's whole process tree and
the command's; the table gives each role's peak and the peak of their sum (one sample, all
processes at once), idle and during the backups. The watchdog's workers (``python -m
watchdog.data.…``: the integrity check's, the snapshot's) are a role of their own, summed over
those alive at one sample, and any process of no known role is counted as "other": the total is
the sum of the columns' processes, none left out."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict

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
        self.total = 0.0
        self.samples = 0
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
                    rss = process.memory_info().rss / MB
                except psutil.Error:
                    continue
                name = role(process)
                now[name] += rss
                count[name] += 1
        for name, rss in now.items():
            self.peaks[name] = max(self.peaks[name], rss)
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
        return table, during.total
    finally:
        supervisord.popen.send_signal(signal.SIGTERM)
        try:
            supervisord.wait(60)
        except subprocess.TimeoutExpired:
            pass
        supervisord.kill_tree()


def cell(sampler: Sampler, name: str) -> str:
    if name not in sampler.peaks:
        return "—"
    most = sampler.most[name]
    return f"{sampler.peaks[name]:.0f}" + (f" (×{most})" if most > 1 else "")


def _row(table: Table, phase: str, sampler: Sampler) -> None:
    table.add(phase, *(cell(sampler, name) for name in ROLES), f"{sampler.total:.0f}")
