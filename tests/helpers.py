"""Small tools shared by the tests: ports, waiting with a deadline, processes that always die."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import psutil

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
T = TypeVar("T")
TEST_RETENTION = {
    "hourly": 24,
    "daily": 7,
    "weekly": 4,
    "deploy": 5,
    "restart": 5,
    "shutdown": 3,
    "manual": 50,
}
"""Backups kept per tier in tests: the defaults, with room for many manual ones."""


@contextlib.contextmanager
def tmpfs(target: Path, size: str) -> Iterator[Path]:
    """A small filesystem of our own (a disk to fill, a mount point), unmounted afterwards.
    Skips the test, saying why, where mounting is not permitted."""
    import pytest

    target.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(target)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here: {done.stderr.decode().strip()}")
    try:
        yield target
    finally:
        subprocess.run(["umount", "-l", str(target)], check=False)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    predicate: Callable[[], T], timeout: float = 15.0, interval: float = 0.1, what: str = ""
) -> T:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except Exception as error:  # the thing may not be up yet
            last_error = error
        else:
            if value:
                return value
        time.sleep(interval)
    raise AssertionError(
        f"timed out after {timeout} s waiting for {what or predicate}: {last_error}"
    )


def base_env(data_dir: Path, port: int, **extra: str) -> dict[str, str]:
    """An environment that sees nothing of the developer's own settings or .env."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TELEGRAM_", "BACKUP_", "RENDER", "STATS_", "ADMIN_"))
        and key not in ("DATA_DIR", "DATABASE_PATH", "DATABASE_URL", "PORT", "HOST")
    }
    env.update(
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        PYTHONPATH=str(REPO),
        PYTHONUNBUFFERED="1",
        ENV_FILE=os.devnull,
        DATA_DIR=str(data_dir),
        PORT=str(port),
        HOST="127.0.0.1",
        BOT_POLL_TIMEOUT="1",
    )
    env.update(extra)
    return env


def http_get(
    url: str, timeout: float = 5.0, headers: Mapping[str, str] | None = None
) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def get_json(url: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
    status, body = http_get(url, **kwargs)
    return status, json.loads(body)


class Proc:
    """A started process whose output goes to a file (no pipe to fill up)."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str], cwd: Path, log: Path) -> None:
        self.log_path = log
        self._log = log.open("ab")  # append: supervisord reopens /dev/stdout itself
        self.popen = subprocess.Popen(
            list(argv),
            env=dict(env),
            cwd=cwd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def wait(self, timeout: float) -> int:
        return self.popen.wait(timeout)

    def descendants(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def kill_tree(self) -> None:
        family = self.descendants()
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL)
        for process in family:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(10)
        psutil.wait_procs(family, timeout=10)
        self._log.close()


class ProcessPool:
    """Every process a test starts; teardown kills each one with its descendants."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.started: list[Proc] = []

    def start(
        self, name: str, argv: Sequence[str], env: Mapping[str, str], cwd: Path | None = None
    ) -> Proc:
        proc = Proc(
            argv, env, cwd or self.workdir, self.workdir / f"{name}-{len(self.started)}.log"
        )
        self.started.append(proc)
        return proc

    def close(self) -> None:
        for proc in reversed(self.started):
            proc.kill_tree()


def find_processes(marker: Sequence[str]) -> list[psutil.Process]:
    """Live processes whose command line contains every string in ``marker``."""
    found = []
    for process in psutil.process_iter(["cmdline", "status"]):
        cmdline = process.info["cmdline"] or []
        if process.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        if all(part in cmdline for part in marker):
            found.append(process)
    return found


class PeakRSS:
    """A process's resident memory before a block and at its highest during it (sampled every
    20 ms by a thread): ``with PeakRSS(pid) as rss: …`` then ``rss.grown_mb``."""

    def __init__(self, pid: int, every: float = 0.02) -> None:
        self.process = psutil.Process(pid)
        self.every = every
        self.baseline = self.peak = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample)

    def _sample(self) -> None:
        while not self._done.is_set():
            with contextlib.suppress(psutil.Error):
                self.peak = max(self.peak, self.process.memory_info().rss)
            self._done.wait(self.every)

    def __enter__(self) -> PeakRSS:
        self.baseline = self.peak = self.process.memory_info().rss
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join(10)

    @property
    def grown_mb(self) -> float:
        return (self.peak - self.baseline) / 1024 / 1024
