"""``python -m bot`` as a real process against the fake Bot API: one started run and how to
wait on it (the ``launch`` fixture in conftest starts them)."""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from conf.layout import DataLayout

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 20.0
"""Generous for a loaded CI machine; a healthy start takes about 1.5 s."""


def wait_until(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``condition`` until it returns something truthy; AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def gone(pid: int) -> bool:
    """Exited (a zombie waiting for a reaper counts as gone)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def kill_hard(pid: int) -> None:
    with contextlib.suppress(psutil.NoSuchProcess):
        psutil.Process(pid).kill()


@dataclass
class BotRun:
    """One started bot (or launcher) process and where its traces go."""

    proc: subprocess.Popen[bytes]
    workdir: Path
    layout: DataLayout
    secrets: list[str] = field(default_factory=list)

    @property
    def stdout(self) -> str:
        return (self.workdir / "stdout.txt").read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return (self.workdir / "stderr.txt").read_text(errors="replace")

    def all_output(self) -> str:
        """stdout, stderr and every log file below DATA_DIR."""
        logs = sorted(self.layout.logs.glob("*")) if self.layout.logs.exists() else []
        return "\n".join([self.stdout, self.stderr, *(p.read_text(errors="replace") for p in logs)])

    def wait(self, timeout: float = START_TIMEOUT) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"the bot did not exit within {timeout}s\n{self.all_output()}"
            ) from None

    def heartbeat_mtime(self) -> int | None:
        try:
            return self.layout.heartbeat_file.stat().st_mtime_ns
        except FileNotFoundError:
            return None

    def wait_polling(self) -> int:
        """Until the heartbeat file exists; its mtime."""
        return wait_until(
            lambda: (self.proc.poll() is None and self.heartbeat_mtime()) or self._died_early(),
            START_TIMEOUT,
            "the first successful getUpdates (heartbeat file)",
        )

    def _died_early(self) -> None:
        if self.proc.poll() is not None:
            raise AssertionError(f"the bot exited with {self.proc.returncode}\n{self.all_output()}")

    def users(self) -> list[dict[str, Any]]:
        with sqlite3.connect(self.layout.database, timeout=5) as conn:
            conn.row_factory = sqlite3.Row
            return [dict(row) for row in conn.execute("SELECT * FROM users ORDER BY id")]
