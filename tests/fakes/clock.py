"""A clock that moves only when someone sleeps on it: runtime tests run in milliseconds, and
every delay they assert is the delay the code asked for, whatever the machine's load."""

from __future__ import annotations

import asyncio


class FakeClock:
    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start
        self.mono = 1000.0
        self.slept: list[float] = []

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.mono += seconds

    async def sleep(self, seconds: float, wake: asyncio.Event) -> None:
        await asyncio.sleep(0)
        if wake.is_set():
            return
        if seconds > 0:
            self.slept.append(seconds)
            self.advance(seconds)
        await asyncio.sleep(0)
