"""``run_bounded``: the watchdog's way out waits for no busy worker thread, and does not take the
idle ones (still winding down after the loop's close) for unfinished work."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from tests.helpers import wait_until
from watchdog.cli.run import TrackedExecutor, run_bounded


class Service:
    """What run_bounded needs of the WatchdogService: an async ``run``."""

    def __init__(self, jobs: int) -> None:
        self.jobs = jobs
        self.threads: set[str] = set()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for _ in range(self.jobs):
            await asyncio.gather(
                *(loop.run_in_executor(None, self._work) for _ in range(4)),
                asyncio.to_thread(self._work),
            )
        return 0

    def _work(self) -> None:
        self.threads.add(threading.current_thread().name)


def test_the_executor_counts_work_until_it_is_done() -> None:
    executor = TrackedExecutor()
    release = threading.Event()
    try:
        futures = [executor.submit(release.wait, 30) for _ in range(3)]
        assert executor.unfinished == 3
        release.set()
        for future in futures:
            assert future.result(timeout=30) is True
        wait_until(lambda: executor.unfinished == 0, 10, what="the work counted done")
        executor.submit(lambda: None).result(timeout=30)
        wait_until(lambda: executor.unfinished == 0, 10, what="the quick job counted done")
    finally:
        release.set()
        executor.shutdown(wait=True)


def test_a_failed_job_is_counted_done_too() -> None:
    executor = TrackedExecutor()
    try:
        with pytest.raises(ZeroDivisionError):
            executor.submit(lambda: 1 / 0).result(timeout=30)
        wait_until(lambda: executor.unfinished == 0, 10, what="the failed job counted done")
    finally:
        executor.shutdown(wait=True)


def test_idle_worker_threads_are_joined_not_reported(caplog: pytest.LogCaptureFixture) -> None:
    service = Service(jobs=20)
    with caplog.at_level(logging.WARNING, logger="watchdog"):
        assert run_bounded(service) == 0  # type: ignore[arg-type]
    assert service.threads and all(name.startswith("asyncio_") for name in service.threads)
    assert "unfinished" not in caplog.text
    alive = {thread.name for thread in threading.enumerate()}
    assert not service.threads & alive, "the loop's worker threads were left running"


def test_work_still_running_is_reported_and_not_waited_for() -> None:
    script = textwrap.dedent(
        """
        import asyncio, logging, sys, threading
        from watchdog.cli.run import run_bounded

        class Busy:
            async def run(self):
                loop = asyncio.get_running_loop()
                started = threading.Event()
                loop.run_in_executor(None, lambda: (started.set(), threading.Event().wait(120)))
                await loop.run_in_executor(None, started.wait, 30)
                return 3

        logging.basicConfig(stream=sys.stderr, level=logging.INFO)
        sys.exit(run_bounded(Busy()))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=90,
        cwd=Path(__file__).parents[2],
    )
    assert done.returncode == 3, done.stderr
    assert "leaving 1 unfinished background task(s) behind at exit" in done.stderr
