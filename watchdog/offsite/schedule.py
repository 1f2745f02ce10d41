"""When to push offsite, and how long to wait after a failure. Pure functions; ``now`` is passed in.

State-based like the local tiers: the newest verified backup goes offsite when the newest
offsite one is older than the interval, so a restart never skips one.
"""

from __future__ import annotations

from watchdog.schedule import is_due

RETRY_BASE = 60.0
RETRY_CAP = 3600.0
ALERT_AFTER = 3
"""Consecutive failures after which the service should alert the admins."""


def offsite_due(now: float, newest_offsite_at: float | None, every: float) -> bool:
    """Whether a push is due, from the ``created_at`` of the newest backup already offsite."""
    return is_due(now, newest_offsite_at, every)


def retry_delay(failures: int, base: float = RETRY_BASE, cap: float = RETRY_CAP) -> float:
    """Seconds to wait after ``failures`` consecutive failures: base, 2·base, 4·base … capped."""
    if failures <= 0:
        return 0.0
    return float(min(cap, base * 2 ** min(failures - 1, 32)))


def should_alert(failures: int) -> bool:
    """Alert once, when the consecutive failures reach ``ALERT_AFTER``."""
    return failures == ALERT_AFTER
