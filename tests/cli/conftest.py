from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests import dbgen
from tests.helpers import base_env, free_port, get_json, wait_until


class Cli:
    def __init__(self, tmp_path: Path) -> None:
        self.data = tmp_path / "data"
        self.data.mkdir()
        self.database = self.data / "erixcast.db"
        self.port = free_port()
        self.env = base_env(self.data, self.port)
        self.cwd = tmp_path

    def __call__(
        self, *args: str, timeout: float = 120, python_flags: bool = False
    ) -> subprocess.CompletedProcess:
        """``python -m watchdog ARGS``; with ``python_flags`` the arguments up to the first that
        is not an interpreter flag go to Python itself (``-X importtime``)."""
        flags: list[str] = []
        rest = list(args)
        if python_flags:
            while rest and rest[0] == "-X":
                flags += rest[:2]
                rest = rest[2:]
        return subprocess.run(
            [sys.executable, *flags, "-m", "watchdog", *rest],
            env=self.env,
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
        )


@pytest.fixture
def cli(tmp_path) -> Cli:
    runner = Cli(tmp_path)
    dbgen.create_bot(runner.database, 300_000)  # a restore accepts only the bot's schema
    return runner


IMPORT_LINE = "import time:"
HEAVY_MODULES = frozenset(
    {
        *(
            "pydantic",
            "pydantic_core",
            "pydantic_settings",
            "dotenv",
            "aiohttp",
            "prometheus_client",
        ),
        *("git", "dataset", "sqlalchemy", "psycopg", "zstandard", "pyrage", "psutil", "sqlite3"),
        *("asyncio", "ssl", "email", "http.client", "urllib.request", "conf.settings"),
    }
)
"""What the terminal client (a command that a running watchdog does) must never load: a
framework, the data's libraries, or urllib's HTTP (http.client, email and ssl: 8 MB)."""
DATA_MODULES = ("sqlite3", "watchdog.data.snapshot", "watchdog.data.catalogue", "aiohttp")
"""What a command that asks the running watchdog must not load: it would open or read the data
(or serve) itself."""


class Traced:
    """A command's run with ``-X importtime``: its output, and every module it imported."""

    def __init__(self, done: subprocess.CompletedProcess) -> None:
        lines = done.stderr.splitlines(keepends=True)
        self.returncode = done.returncode
        self.stdout = done.stdout
        self.stderr = "".join(line for line in lines if not line.startswith(IMPORT_LINE))
        self.modules = {
            line.split("|")[-1].strip() for line in lines if line.startswith(IMPORT_LINE)
        }

    def touched_the_data(self) -> list[str]:
        return sorted(
            m for m in self.modules if m.split(".")[0] in DATA_MODULES or m in DATA_MODULES
        )


class Stack:
    """A running watchdog on the Cli's DATA_DIR (no bot token: the watchdog alone serves)."""

    def __init__(self, cli: Cli, processes) -> None:  # type: ignore[no-untyped-def]
        self.cli = cli
        self.admin_file = cli.data / "run" / "admin.json"
        self.proc = processes.start("watchdog", [sys.executable, "-m", "watchdog", "run"], cli.env)
        wait_until(
            lambda: (
                self.admin_file.is_file()
                and all(
                    get_json(f"http://127.0.0.1:{cli.port}/health")[1]["backups"]["tiers"][tier]
                    for tier in ("hourly", "daily", "weekly")
                )
            ),
            timeout=60,
            what="the watchdog serving, with its first hourly, daily and weekly backups",
        )

    def log(self) -> str:
        return self.proc.output()

    def stop(self) -> None:
        self.proc.popen.send_signal(signal.SIGTERM)
        assert self.proc.wait(30) == 0


def traced(cli: Cli, *args: str, timeout: float = 120) -> Traced:
    return Traced(cli("-X", "importtime", *args, timeout=timeout, python_flags=True))


@pytest.fixture
def stack(cli, processes) -> Stack:
    return Stack(cli, processes)
