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

from conf.secret import Secret
from conf.settings import BOT_LIMIT_SETTINGS, FIELDS, WEBHOOK_SETTINGS, Settings, env_name

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
BOT_SETTINGS = (
    "telegram_bot_token",
    "telegram_api_url",
    "admin_ids",
    "data_dir",
    "database_path",
    "database_url",
    "bot_poll_timeout",
    "log_level",
    "log_format",
    *BOT_LIMIT_SETTINGS,
    *WEBHOOK_SETTINGS,
)
"""The settings the bot uses; it is given these and no other (it reads untrusted input, so it
gets no secret it does not need: not the git token, the age key or the stats token)."""


class AdminAddress(Protocol):
    url: str
    secret: str


def _as_env(value: object) -> str:
    if isinstance(value, Secret):
        return value.get_secret_value()
    if isinstance(value, tuple):
        return ",".join(str(item) for item in value)
    return str(value)


def bot_environment(settings: Settings, admin: AdminAddress | None) -> dict[str, str]:
    """The bot's environment: ours without any setting, then exactly the bot's settings as the
    watchdog read them (from the environment or the env file), ``ENV_FILE=/dev/null`` so the bot
    reads no env file of its own, and where the watchdog's admin API is."""
    setting_names = {env_name(name) for name in FIELDS}
    env = {key: value for key, value in os.environ.items() if key.upper() not in setting_names}
    for name in BOT_SETTINGS:
        value = getattr(settings, name)
        if value is not None:
            env[env_name(name)] = _as_env(value)
    env["ENV_FILE"] = os.devnull
    env["ERIXCAST_WATCHDOG_PID"] = str(os.getpid())
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
        try:
            self.pid_file.write_text(f"{self._process.pid}\n")
        except OSError as error:  # a full disk: the bot runs; only a later orphan hunt is blind
            log.warning("cannot write %s (%s): the bot runs anyway", self.pid_file, error)
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
