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
STARTUP_GRACE = 30.0
"""Seconds a freshly launched bot may take to make its first poll, whatever the heartbeat limit."""


def restart_delay(consecutive_failures: int, cap: float) -> float:
    """Exponential backoff: 0.5 s, 1 s, 2 s, 4 s … up to ``cap``."""
    return backoff.delay(consecutive_failures, FIRST_RESTART_DELAY, cap)


def failures_after_exit(previous_failures: int, run_seconds: float) -> int:
    """Consecutive failures once a run of ``run_seconds`` ended: a long run resets the count."""
    return 1 if run_seconds >= STABLE_RUN else previous_failures + 1


def proven_healthy(run_seconds: float, polled: bool) -> bool:
    """A bot that has polled and kept running for ``STABLE_RUN`` has left any crash loop behind,
    although it has not exited: its failures count from zero again (while it runs, not only at its
    next exit)."""
    return polled and run_seconds >= STABLE_RUN


def is_crash_loop(consecutive_failures: int) -> bool:
    return consecutive_failures >= CRASH_LOOP_AFTER


@dataclass(frozen=True)
class HeartbeatVerdict:
    stale: bool
    silent_for: float


def heartbeat_verdict(
    now: float,
    launched_at: float,
    last_heartbeat: float | None,
    limit: float,
    startup_grace: float = STARTUP_GRACE,
) -> HeartbeatVerdict:
    """Whether a live bot has been silent too long.

    A heartbeat older than the launch belongs to a previous bot, so silence counts from the later
    of the two. Before its first poll a freshly launched bot gets at least ``startup_grace``:
    on a loaded machine its start-up alone can outlast a short ``limit``, and killing it then
    only starts the next one slower.
    """
    first_poll_pending = last_heartbeat is None or last_heartbeat < launched_at
    last_sign = launched_at if last_heartbeat is None else max(launched_at, last_heartbeat)
    silent_for = max(0.0, now - last_sign)
    allowed = max(limit, startup_grace) if first_poll_pending else limit
    return HeartbeatVerdict(stale=silent_for > allowed, silent_for=silent_for)
