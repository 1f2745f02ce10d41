"""Fixtures of the integration tests: the fake Bot API and real bot processes against it."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conf.layout import DataLayout
from tests.fakes.telegram_api import FakeTelegramAPI
from tests.integration.botrun import REPO, BotRun, kill_hard


@pytest.fixture
def fake() -> Iterator[FakeTelegramAPI]:
    server = FakeTelegramAPI()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def launch(tmp_path: Path, fake: FakeTelegramAPI) -> Iterator[Callable[..., BotRun]]:
    """Start processes (``python -m bot`` unless ``argv``); all are killed at teardown."""
    started: list[BotRun] = []
    extra_pids: list[int] = []

    def start(argv: list[str] | None = None, **env_overrides: str | None) -> BotRun:
        workdir = tmp_path / f"run{len(started)}"
        data_dir = workdir / "data"
        workdir.mkdir()
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("TELEGRAM_", "DATABASE_", "ERIXCAST_")) and key != "DATA_DIR"
        }
        env.update(
            PYTHONPATH=str(REPO),
            ENV_FILE=os.devnull,
            DATA_DIR=str(data_dir),
            TELEGRAM_BOT_TOKEN=fake.token,
            TELEGRAM_API_URL=fake.base_url,
            BOT_POLL_TIMEOUT="1",
            LOG_LEVEL="INFO",
        )
        for key, value in env_overrides.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        with (
            open(workdir / "stdout.txt", "wb") as out,
            open(workdir / "stderr.txt", "wb") as err,
        ):
            proc = subprocess.Popen(
                argv or [sys.executable, "-m", "bot"],
                cwd=workdir,
                env=env,
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
            )
        data_dir = Path(env["DATA_DIR"])  # a later run may be given an earlier run's
        layout = DataLayout(root=data_dir, database=data_dir / "erixcast.db")
        run = BotRun(proc, workdir, layout)
        started.append(run)
        return run

    start.track_pid = extra_pids.append  # type: ignore[attr-defined]
    try:
        yield start
    finally:
        for pid in extra_pids:
            kill_hard(pid)
        for run in started:
            if run.proc.poll() is None:
                run.proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                run.proc.wait(10)
