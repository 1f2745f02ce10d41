from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests import dbgen
from tests.helpers import base_env, free_port


class Cli:
    def __init__(self, tmp_path: Path) -> None:
        self.data = tmp_path / "data"
        self.data.mkdir()
        self.database = self.data / "erixcast.db"
        self.port = free_port()
        self.env = base_env(self.data, self.port)
        self.cwd = tmp_path

    def __call__(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "watchdog", *args],
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
