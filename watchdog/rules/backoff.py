"""The one backoff: how long to wait after consecutive failures, and when to tell someone.

Used for the bot's relaunches, failed scheduled backups and failed offsite pushes.
"""

from __future__ import annotations

from dataclasses import dataclass

ALERT_AFTER = 3
"""Consecutive failures after which the admins are told (once)."""


def delay(failures: int, first: float, cap: float) -> float:
    """Seconds to wait after ``failures`` consecutive failures: first, 2·first, 4·first … cap."""
    if failures <= 0:
        return 0.0
    return float(min(cap, first * 2 ** min(failures - 1, 32)))


def alert_due(failures: int) -> bool:
    """Alert once, when the consecutive failures reach ``ALERT_AFTER``."""
    return failures == ALERT_AFTER


@dataclass
class Retry:
    """Consecutive failures of one job and when it may run again (plain data, ``now`` passed in)."""

    first: float
    cap: float
    failures: int = 0
    next_at: float | None = None

    def ready(self, now: float) -> bool:
        return self.next_at is None or now >= self.next_at

    def failed(self, now: float) -> float:
        """Count a failure; returns the wait before the next try."""
        self.failures += 1
        wait = delay(self.failures, self.first, self.cap)
        self.next_at = now + wait
        return wait

    def succeeded(self) -> None:
        self.failures, self.next_at = 0, None
