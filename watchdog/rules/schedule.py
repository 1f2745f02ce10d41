"""When backups are due: state-based, from the newest verified backup of each tier and the clock.

A tier is due when its newest backup is older than its interval, so restarts and deploys never
skip one (there is no timer to lose). All functions are pure; ``now`` is passed in.
"""

from __future__ import annotations

from collections.abc import Mapping

FUTURE_SLACK = 300.0
"""A backup stamped this far in the future means the clock went back: do not trust its age."""


def is_due(now: float, newest_at: float | None, interval: float) -> bool:
    if newest_at is None:
        return True
    if newest_at > now + FUTURE_SLACK:
        return True  # the clock jumped back; a fresh backup is the safe answer
    return now - newest_at >= interval


def newest_trusted(
    now: float, backups: list[tuple[str, float]], intervals: Mapping[str, float]
) -> dict[str, float | None]:
    """Per tier, the newest backup time that is not in the future.

    A backup stamped ahead of the clock (the clock went back) must not count as the newest: it
    would keep its tier due forever, and a backup every few seconds would push the real history
    out through retention. Once one backup is taken at the current time, the tier is at rest.
    """
    newest: dict[str, float | None] = dict.fromkeys(intervals)
    for tier, created_at in backups:
        if tier in newest and created_at <= now + FUTURE_SLACK:
            current = newest[tier]
            newest[tier] = created_at if current is None else max(current, created_at)
    return newest


def due_tiers(
    now: float, newest_at: Mapping[str, float | None], intervals: Mapping[str, float]
) -> list[str]:
    return [tier for tier, every in intervals.items() if is_due(now, newest_at.get(tier), every)]


def overdue_tiers(
    now: float,
    newest_at: Mapping[str, float | None],
    intervals: Mapping[str, float],
    watching_since: float,
) -> list[str]:
    """Tiers more than twice their interval behind (a tier never taken counts from start-up)."""
    late = []
    for tier, every in intervals.items():
        since = newest_at.get(tier)
        reference = since if since is not None and since <= now + FUTURE_SLACK else watching_since
        if now - reference > 2 * every:
            late.append(tier)
    return late


def deploy_snapshot_needed(current_version: str, recorded_version: str | None) -> bool:
    """A new version of the code is about to touch the data (or we never recorded one)."""
    return recorded_version != current_version


def shutdown_snapshot_fits(
    remaining_budget: float, database_bytes: int, bytes_per_second: float, margin: float = 2.0
) -> bool:
    """Whether a shutdown snapshot can finish inside what is left of the shutdown budget."""
    expected = database_bytes / max(bytes_per_second, 1.0)
    return expected * 1.5 + margin <= remaining_budget


def room_for_backup(free_bytes: int, expected_bytes: int, margin_bytes: int) -> int:
    """Bytes missing before a backup of ``expected_bytes`` may start (0: there is room)."""
    return max(0, expected_bytes + margin_bytes - free_bytes)


DRILL_EVERY = 86400.0
"""A restore drill a day."""


def offsite_due(now: float, newest_offsite_at: float | None, every: float) -> bool:
    """Whether a push is due, from the ``created_at`` of the newest backup already offsite:
    state-based like the local tiers, so a restart never skips one."""
    return is_due(now, newest_offsite_at, every)


def erasure_rows_of(extra: Mapping[str, object]) -> int | None:
    """The erasure rows a backup's manifest says its database held (None: it does not say)."""
    value = extra.get("erasure_rows")
    return int(value) if isinstance(value, str) and value.isdigit() else None


def erasure_backup_due(held_now: int | None, newest_backup_held: int | None) -> bool:
    """A backup now, off schedule: the database's own record of erasures (PostgreSQL's table)
    has rows that no backup holds yet, so a restore from the newest backup alone, with the live
    database lost too, would bring an erased user back. A backup that does not say how many it
    holds counts as holding none."""
    return held_now is not None and held_now > (newest_backup_held or 0)


def offsite_erasure_due(newest_local_held: int | None, newest_offsite_held: int | None) -> bool:
    """A push now, off schedule: the newest local backup holds erasures that the newest one
    offsite lacks (a lost disk would restore from the branch)."""
    return newest_local_held is not None and newest_local_held > (newest_offsite_held or 0)


def drill_due(now: float, last_drill_at: float | None, every: float = DRILL_EVERY) -> bool:
    return is_due(now, last_drill_at, every)
