"""A bot process for a benchmark: started, waited for until it polls, stopped afterwards."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

from tests.helpers import wait_until

UNLIMITED = {"RATE_LIMIT_BURST": "1000", "RATE_LIMIT_PER_MINUTE": "6000"}
"""The per-user rate limit out of the way: a benchmark's burst measures the handling itself."""


@contextlib.contextmanager
def polling_bot(
    argv: list[str], env: dict[str, str], data_dir: Path, log: Path, cwd: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """``argv`` running until the block ends (SIGTERM, then SIGKILL after 30 s); the block
    starts once the bot polls (its heartbeat file exists). RuntimeError if it exits first."""
    heartbeat = data_dir / "run" / "bot.heartbeat"
    with log.open("ab") as out:
        bot = subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        try:
            wait_until(lambda: heartbeat.exists() or bot.poll() is not None, 60, what="polling")
            if bot.poll() is not None:
                raise RuntimeError(f"the bot exited with {bot.returncode} (see {log})")
            yield bot
        finally:
            bot.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                bot.wait(30)
            if bot.poll() is None:
                bot.kill()
                bot.wait(10)
