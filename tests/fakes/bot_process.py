"""A bot process that is only a script: how long each run lasts and how it ends, on the fake
clock. Given to ``BotSupervisor.spawn`` in place of ``BotProcess``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.fakes.clock import FakeClock

FOREVER = float("inf")


@dataclass
class Script:
    """One run: exit with ``code`` after ``lasts`` seconds (FOREVER: until stopped)."""

    lasts: float = FOREVER
    code: int = 1
    stop_code: int = -15
    launch_error: OSError | None = None
    """Raised by ``start``: no process could be made (a full disk, no memory)."""
    writes: tuple[Path, str] | None = None
    """A file it writes as it starts (its start-up replay's report)."""


@dataclass
class FakeRun:
    clock: FakeClock
    script: Script
    log: list[str]
    number: int
    pid: int | None = None
    returncode: int | None = None
    started_at: float = 0.0
    stopped: bool = False

    async def start(self) -> int:
        if self.script.launch_error is not None:
            self.log.append(f"cannot start {self.number}")
            raise self.script.launch_error
        self.pid = 4000 + self.number
        self.started_at = self.clock.monotonic()
        if self.script.writes is not None:
            self.script.writes[0].write_text(self.script.writes[1])
        self.log.append(f"start {self.number}")
        return self.pid

    async def wait(self, timeout: float | None = None) -> int | None:
        await asyncio.sleep(0)
        if self.returncode is not None:
            return self.returncode
        ends_at = self.started_at + self.script.lasts
        step = FOREVER if timeout is None else timeout
        if self.clock.monotonic() + step >= ends_at:
            self.clock.advance(max(0.0, ends_at - self.clock.monotonic()))
            self.returncode = self.script.code
            self.log.append(f"exit {self.number} code {self.script.code}")
            return self.returncode
        self.clock.advance(step)
        return None

    async def stop(self, grace: float) -> int:
        await asyncio.sleep(0)
        if self.returncode is None:
            self.stopped = True
            self.returncode = self.script.stop_code
            self.log.append(f"stop {self.number}")
        return self.returncode


@dataclass
class FakeSpawner:
    """Hands out runs by script; ``after_launch`` is called with the launch count (a test uses
    it to request the stop that ends the scenario)."""

    clock: FakeClock
    scripts: list[Script]
    log: list[str] = field(default_factory=list)
    runs: list[FakeRun] = field(default_factory=list)
    launched_at: list[float] = field(default_factory=list)
    argvs: list[list[str]] = field(default_factory=list)
    after_launch: Callable[[int], None] = lambda _: None

    def __call__(
        self, argv: Sequence[str], env: Mapping[str, str], cwd: Path, pid_file: Path
    ) -> FakeRun:
        number = len(self.runs) + 1
        script = self.scripts[min(number, len(self.scripts)) - 1]
        run = FakeRun(self.clock, script, self.log, number)
        self.runs.append(run)
        self.argvs.append(list(argv))
        self.launched_at.append(self.clock.monotonic())
        self.after_launch(number)
        return run
