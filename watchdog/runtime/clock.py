"""Time, injected: the supervision code asks a Clock, so tests can move time without sleeping."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def time(self) -> float:
        """Wall-clock seconds since the epoch (comparable with file mtimes)."""
        ...

    def monotonic(self) -> float:
        """Seconds that never go backwards, for intervals and deadlines."""
        ...


class SystemClock:
    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()
