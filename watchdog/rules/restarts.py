"""Decisions about the bot's life, as plain functions over plain numbers (no processes, no clock)."""

from __future__ import annotations

from dataclasses import dataclass

from watchdog.rules import backoff

FIRST_RESTART_DELAY = 0.5
"""Seconds before the first relaunch: a one-off crash costs the users under a second."""
STABLE_RUN = 60.0
"""A run at least this long is not part of a crash loop; the backoff starts over after it."""
CRASH_LOOP_AFTER = 3
"""Consecutive short runs that make a crash loop (shown in /health)."""


def restart_delay(consecutive_failures: int, cap: float) -> float:
    """Exponential backoff: 0.5 s, 1 s, 2 s, 4 s … up to ``cap``."""
    return backoff.delay(consecutive_failures, FIRST_RESTART_DELAY, cap)


def failures_after_exit(previous_failures: int, run_seconds: float) -> int:
    """Consecutive failures once a run of ``run_seconds`` ended: a long run resets the count."""
    return 1 if run_seconds >= STABLE_RUN else previous_failures + 1


def is_crash_loop(consecutive_failures: int) -> bool:
    return consecutive_failures >= CRASH_LOOP_AFTER


@dataclass(frozen=True)
class HeartbeatVerdict:
    stale: bool
    silent_for: float


def heartbeat_verdict(
    now: float, launched_at: float, last_heartbeat: float | None, limit: float
) -> HeartbeatVerdict:
    """Whether a live bot has been silent too long.

    A heartbeat older than the launch belongs to a previous bot, so silence counts from the later
    of the two: a freshly launched bot gets the whole ``limit`` to make its first poll.
    """
    last_sign = launched_at if last_heartbeat is None else max(launched_at, last_heartbeat)
    silent_for = max(0.0, now - last_sign)
    return HeartbeatVerdict(stale=silent_for > limit, silent_for=silent_for)
