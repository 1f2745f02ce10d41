"""The bot as a child process: launch, signal once, wait, kill.

Thin on purpose: when to launch or stop is decided elsewhere (``rules.restarts``, ``supervision``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

import psutil

from conf.settings import Settings

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
BOT_NEEDS_NOT = ("BACKUP_GIT_TOKEN", "BACKUP_AGE_KEY", "STATS_TOKEN", "BACKUP_GIT_URL")
"""Secrets the bot never uses: it reads untrusted input, so it gets no more than it needs."""


class AdminAddress(Protocol):
    url: str
    secret: str


def bot_environment(settings: Settings, admin: AdminAddress | None) -> dict[str, str]:
    """The bot's environment: ours without the secrets it does not use, plus where its data and
    the watchdog's admin API are."""
    env = dict(os.environ)
    for secret in BOT_NEEDS_NOT:
        env.pop(secret, None)
    env["ERIXCAST_WATCHDOG_PID"] = str(os.getpid())
    env["DATA_DIR"] = str(settings.data_dir)
    env["DATABASE_PATH"] = str(settings.database)
    env["PYTHONUNBUFFERED"] = "1"
    if admin is not None:
        env["ERIXCAST_WATCHDOG_URL"] = admin.url
        env["ERIXCAST_WATCHDOG_SECRET"] = admin.secret
    env["PYTHONPATH"] = os.pathsep.join(
        part for part in (str(PROJECT_ROOT), env.get("PYTHONPATH", "")) if part
    )
    return env


class BotProcess:
    """One run of the bot. Its pid is written to ``pid_file`` so a later watchdog can find it."""

    def __init__(
        self, argv: Sequence[str], env: Mapping[str, str], cwd: Path, pid_file: Path
    ) -> None:
        self.argv = list(argv)
        self.env = dict(env)
        self.cwd = cwd
        self.pid_file = pid_file
        self._process: asyncio.subprocess.Process | None = None
        self._term_sent = False

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def returncode(self) -> int | None:
        return self._process.returncode if self._process else None

    async def start(self) -> int:
        self._process = await asyncio.create_subprocess_exec(
            *self.argv, env=self.env, cwd=self.cwd, stdin=asyncio.subprocess.DEVNULL
        )
        self.pid_file.write_text(f"{self._process.pid}\n")
        return self._process.pid

    async def wait(self, timeout: float | None = None) -> int | None:
        """The exit code, or None if still running after ``timeout`` seconds."""
        assert self._process is not None
        try:
            code = await asyncio.wait_for(self._process.wait(), timeout)
        except TimeoutError:
            return None
        self.pid_file.unlink(missing_ok=True)
        return code

    async def stop(self, grace: float) -> int:
        """One SIGTERM, up to ``grace`` seconds to finish, then SIGKILL.

        Only one SIGTERM: a second one makes python-telegram-bot abort its final persistence flush.
        """
        if self._process is None:
            return 0  # never started
        if self._process.returncode is None:
            if not self._term_sent:
                self._term_sent = True
                self._process.send_signal(signal.SIGTERM)
            code = await self.wait(grace)
            if code is not None:
                return code
            log.warning(
                "bot (pid %s) still running %.0f s after SIGTERM: killing it", self.pid, grace
            )
            self._process.kill()
        code = await self.wait(10)
        return code if code is not None else -signal.SIGKILL


def reap_leftover_bot(pid_file: Path, grace: float) -> int | None:
    """Stop a bot left behind by a previous watchdog, so two bots never poll at once.

    Blocking; returns the pid that was stopped. Only a process whose command line is ours
    (``-m bot``) is touched: a recycled pid belonging to something else is left alone.
    """
    try:
        pid = int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        process = psutil.Process(pid)
        cmdline = process.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        pid_file.unlink(missing_ok=True)
        return None
    if "bot" not in cmdline or "-m" not in cmdline or pid == os.getpid():
        pid_file.unlink(missing_ok=True)
        return None
    log.warning("a bot from a previous watchdog is still running (pid %s): stopping it", pid)
    process.terminate()
    try:
        process.wait(grace)
    except psutil.TimeoutExpired:
        process.kill()
        process.wait(10)
    pid_file.unlink(missing_ok=True)
    return pid
