"""The stack under test, as Render runs it: supervisord (the repository's supervisord.conf, as
the tests start it) → watchdog → bot, plus the fatal listener; DATA_DIR on a small tmpfs of its
own; offsite to the authenticated HTTP git server of the tests; the fake Bot API on 127.0.0.1.

Every process of the stack carries ``CHAOS_RUN_ID=<random>`` in its environment (the watchdog
passes variables that are not settings on to the bot and to git), which is how they are found,
counted and, at the end, proven gone — whoever their parent is by then.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from pyrage import x25519

from tests.chaos.fakeapi import RecordingTelegramAPI
from tests.fakes.git_server import FakeGitServer
from tests.helpers import REPO, VENV_BIN, Proc, base_env, free_port, get_json

SUPERVISORD = [str(VENV_BIN / "supervisord"), "-c", str(REPO / "supervisord.conf")]
MARKER = "CHAOS_RUN_ID"
ADMIN_UID = 700_001
BRANCH = "db-backups"


@dataclass(frozen=True)
class Secrets:
    """Every secret the stack holds, each recognizable and random (the admin API's per-run
    secret is the watchdog's own: the monitor collects it from ``run/admin.json``)."""

    bot_token: str
    git_token: str
    stats_token: str
    age_key: str

    @classmethod
    def generate(cls) -> Secrets:
        return cls(
            bot_token=f"424242:CHAOS-bot-{secrets.token_hex(12)}",
            git_token=f"chaos_git_{secrets.token_hex(16)}",
            stats_token=f"chaos-stats-{secrets.token_hex(12)}",
            age_key=str(x25519.Identity.generate()),
        )

    def named(self) -> dict[str, str]:
        return {
            "TELEGRAM_BOT_TOKEN": self.bot_token,
            "BACKUP_GIT_TOKEN": self.git_token,
            "STATS_TOKEN": self.stats_token,
            "BACKUP_AGE_KEY": self.age_key,
        }


@dataclass
class StackSettings:
    tmpfs_size: str = "256m"
    hourly_every: str = "20s"
    daily_every: str = "60s"
    weekly_every: str = "150s"
    integrity_every: str = "5s"
    offsite_every: str = "30s"
    journal_offsite_every: str = "10s"
    git_timeout: str = "20s"
    heartbeat_timeout: str = "20s"
    extra_env: dict[str, str] = field(default_factory=dict)


class ChaosStack:
    def __init__(
        self,
        workdir: Path,
        settings: StackSettings,
        fake: RecordingTelegramAPI,
        secrets_: Secrets,
    ) -> None:
        self.workdir = workdir
        self.settings = settings
        self.fake = fake
        self.secrets = secrets_
        self.run_id = secrets.token_hex(8)
        self.logs = workdir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.disk = workdir / "disk"
        self.tmpfs = False
        self.tmpfs_error: str | None = None
        self.git: FakeGitServer | None = None
        self.git_repo: Path | None = None
        self.port = free_port()
        self.commit = secrets.token_hex(20)
        self.deploys = 0
        self.supervisords: list[Proc] = []
        self._ours: dict[tuple[int, float], bool] = {}

    # -------------------------------------------------------------------------------- set-up
    @property
    def data(self) -> Path:
        return self.disk / "data"

    @property
    def database(self) -> Path:
        return self.data / "erixcast.db"

    def prepare(self) -> None:
        self.disk.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={self.settings.tmpfs_size},mode=0700", "tmpfs",
             str(self.disk)],
            capture_output=True,
            text=True,
        )  # fmt: skip
        if done.returncode == 0:
            self.tmpfs = True
        else:
            self.tmpfs_error = (done.stderr or done.stdout).strip() or f"exit {done.returncode}"
        self.git = FakeGitServer(self.workdir / "git", self.secrets.git_token).__enter__()
        self.git_repo = self.git.create_repo("backups.git")

    def env(self) -> dict[str, str]:
        assert self.git is not None and self.git_repo is not None
        s = self.settings
        env = base_env(
            self.data,
            self.port,
            TELEGRAM_BOT_TOKEN=self.secrets.bot_token,
            TELEGRAM_API_URL=self.fake.base_url,
            ADMIN_IDS=str(ADMIN_UID),
            STATS_TOKEN=self.secrets.stats_token,
            BACKUP_GIT_URL=self.git.url(self.git_repo),
            BACKUP_GIT_TOKEN=self.secrets.git_token,
            BACKUP_GIT_BRANCH=BRANCH,
            BACKUP_AGE_KEY=self.secrets.age_key,
            BACKUP_GIT_TIMEOUT=s.git_timeout,
            BACKUP_OFFSITE_EVERY=s.offsite_every,
            JOURNAL_OFFSITE_EVERY=s.journal_offsite_every,
            BACKUP_HOURLY_EVERY=s.hourly_every,
            BACKUP_DAILY_EVERY=s.daily_every,
            BACKUP_WEEKLY_EVERY=s.weekly_every,
            INTEGRITY_CHECK_EVERY=s.integrity_every,
            BOT_HEARTBEAT_TIMEOUT=s.heartbeat_timeout,
            RENDER_GIT_COMMIT=self.commit,
            **{MARKER: self.run_id},
        )
        env.update(s.extra_env)
        return env

    # ----------------------------------------------------------------------------- the stack
    def start(self) -> Proc:
        number = len(self.supervisords)
        proc = Proc(SUPERVISORD, self.env(), self.workdir, self.logs / f"supervisord-{number}.log")
        self.supervisords.append(proc)
        return proc

    @property
    def supervisord(self) -> Proc | None:
        return self.supervisords[-1] if self.supervisords else None

    def deploy(self) -> None:
        """The next start is a new version of the code (Render sets RENDER_GIT_COMMIT)."""
        self.commit = secrets.token_hex(20)
        self.deploys += 1

    def stop(self, timeout: float = 40.0) -> tuple[int | None, float]:
        """SIGTERM to supervisord (a deploy's or a shutdown's first step): exit code, seconds."""
        proc = self.supervisord
        started = time.monotonic()
        if proc is None or proc.popen.poll() is not None:
            return (proc.popen.returncode if proc else None), 0.0
        proc.popen.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            code = None
        return code, time.monotonic() - started

    def kill_all(self) -> list[int]:
        """SIGKILL to every process of the stack at once (a machine lost, a kill -9 of all)."""
        found = self.processes()
        for process in found:
            with contextlib.suppress(psutil.Error):
                process.kill()
        psutil.wait_procs(found, timeout=10)
        for proc in self.supervisords:
            if proc.popen.poll() is None:
                proc.popen.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
        return [p.pid for p in found]

    # ------------------------------------------------------------------------- its processes
    def is_ours(self, process: psutil.Process) -> bool:
        try:
            key = (process.pid, process.create_time())
        except psutil.Error:
            return False
        known = self._ours.get(key)
        if known is None:
            try:
                known = process.environ().get(MARKER) == self.run_id
            except psutil.Error:
                return False
            self._ours[key] = known
        return known

    def processes(self) -> list[psutil.Process]:
        """Every live (not zombie) process of the stack, whoever its parent now is."""
        found = []
        for process in psutil.process_iter(["status"]):
            if process.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if process.pid != os.getpid() and self.is_ours(process):
                found.append(process)
        return found

    @staticmethod
    def role(process: psutil.Process) -> str:
        try:
            cmdline = process.cmdline()
        except psutil.Error:
            return "gone"
        if any(part.endswith("supervisord") for part in cmdline[:2]):
            return "supervisord"
        if "-m" in cmdline:
            module = cmdline[cmdline.index("-m") + 1 :]
            if module[:1] == ["bot"]:
                return "bot"
            if module[:2] == ["watchdog", "run"]:
                return "watchdog"
            if module[:1] == ["watchdog.fatal_listener"]:
                return "fatal_listener"
        return "other"

    def by_role(self, role: str, among: list[psutil.Process] | None = None) -> list[psutil.Process]:
        """The processes of ``role``, not counting their own forks (a watchdog's worker has the
        watchdog's command line)."""
        found = [p for p in (self.processes() if among is None else among) if self.role(p) == role]
        pids = {p.pid for p in found}
        top = []
        for process in found:
            try:
                if process.ppid() not in pids:
                    top.append(process)
            except psutil.Error:
                continue
        return top

    # ------------------------------------------------------------------------------- HTTP
    def health(self, timeout: float = 3.0) -> tuple[int, dict[str, Any]] | None:
        try:
            return get_json(f"http://127.0.0.1:{self.port}/health", timeout=timeout)
        except (OSError, ValueError):
            return None

    def stats(self, timeout: float = 5.0) -> tuple[int, dict[str, Any]] | None:
        headers = {"Authorization": f"Bearer {self.secrets.stats_token}"}
        try:
            return get_json(f"http://127.0.0.1:{self.port}/stats", timeout=timeout, headers=headers)
        except (OSError, ValueError):
            return None

    def http_text(self, path: str, timeout: float = 5.0, auth: bool = False) -> str:
        from tests.helpers import http_get

        headers = {"Authorization": f"Bearer {self.secrets.stats_token}"} if auth else None
        try:
            return http_get(f"http://127.0.0.1:{self.port}{path}", timeout, headers)[1]
        except OSError as error:
            return f"<{path}: {error}>"

    # ---------------------------------------------------------------------------- teardown
    def close(self) -> None:
        """Kill whatever of the stack still runs (wherever it was re-parented), stop the git
        server, unmount the tmpfs. Safe to call twice."""
        with contextlib.suppress(Exception):
            self.kill_all()
        if self.git is not None:
            with contextlib.suppress(Exception):
                self.git.close()
            self.git = None
        for proc in self.supervisords:
            with contextlib.suppress(Exception):
                proc.kill_tree()
        if self.tmpfs:
            subprocess.run(["umount", "-l", str(self.disk)], check=False, capture_output=True)
            self.tmpfs = False

    def disk_usage(self) -> psutil._common.sdiskusage:  # type: ignore[name-defined]
        return psutil.disk_usage(str(self.disk))
