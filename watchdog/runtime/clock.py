"""Time, injected: everything in the runtime asks a Clock (reading it and sleeping on it), so
tests move time forward without sleeping (see ``tests/fakes/clock.py``)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Protocol


class Clock(Protocol):
    def time(self) -> float:
        """Wall-clock seconds since the epoch (comparable with file mtimes)."""
        ...

    def monotonic(self) -> float:
        """Seconds that never go backwards, for intervals and deadlines."""
        ...

    async def sleep(self, seconds: float, wake: asyncio.Event) -> None:
        """Sleep ``seconds``, returning early once ``wake`` is set."""
        ...


class SystemClock:
    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float, wake: asyncio.Event) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), seconds)
