"""The update journal's decisions, over plain data: which segments may go, whether a push to
the offsite branch is due, and which journal packages the branch may let go.

A segment holds updates the bot acknowledged; it is the only copy of those made after the
newest backup. So a closed segment (never the newest-numbered one, which the bot writes) goes
only when a verified backup begun after its newest entry holds all of it — and, with offsite
configured, when such a backup is on the branch, so a lost disk still has every update. The one
exception is the size bound (``JOURNAL_MAX_MB``): past it the oldest closed segments go even
uncovered, and that is said loudly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

COVER_MARGIN = 5.0
"""Seconds a backup must begin after a segment's newest entry to count as holding it: the bot
appends an update to the journal just before the batch that writes it commits."""
PUSH_CLOCK_SLACK = 300.0
"""A last push dated this far ahead of the clock means the clock went back: push again."""


@dataclass(frozen=True)
class Segment:
    number: int
    newest_at: float | None
    """Seconds since the epoch of its newest entry (None: it holds none)."""
    size: int


@dataclass(frozen=True)
class Prune:
    covered: tuple[int, ...] = ()
    """Closed segments a backup holds entirely: removed quietly."""
    over_bound: tuple[int, ...] = ()
    """Closed segments removed only because the journal is past its bound: said loudly."""
    bytes_after: int = 0

    @property
    def numbers(self) -> tuple[int, ...]:
        return self.covered + self.over_bound


def covered_until(
    local_backups_at: Sequence[float],
    offsite_backup_at: float | None,
    offsite_configured: bool,
    now: float,
) -> float | None:
    """The moment up to which every update is in a verified backup (and, with offsite
    configured, in one on the branch): the newest such backup's start. Backups dated after
    ``now`` (the clock went back) cover nothing: they would cover updates not made yet."""
    if offsite_configured:
        candidates = [offsite_backup_at] if offsite_backup_at is not None else []
    else:
        candidates = list(local_backups_at)
    trusted = [at for at in candidates if at <= now]
    return max(trusted) if trusted else None


def is_covered(segment: Segment, until: float | None, margin: float = COVER_MARGIN) -> bool:
    if until is None:
        return False
    return segment.newest_at is None or segment.newest_at + margin <= until


def prune_plan(
    segments: Sequence[Segment],
    until: float | None,
    total_bytes: int,
    max_bytes: int,
    margin: float = COVER_MARGIN,
) -> Prune:
    """What to remove: every closed segment ``until`` covers, then — only while the journal
    (``total_bytes``, every file in its folder) stays above ``max_bytes`` — the oldest closed
    segments left. The newest-numbered segment is never removed."""
    ordered = sorted(segments, key=lambda s: s.number)
    closed = ordered[:-1]
    covered = [s for s in closed if is_covered(s, until, margin)]
    remaining = total_bytes - sum(s.size for s in covered)
    over: list[Segment] = []
    for segment in closed:
        if remaining <= max_bytes:
            break
        if segment in covered:
            continue
        over.append(segment)
        remaining -= segment.size
    return Prune(tuple(s.number for s in covered), tuple(s.number for s in over), max(0, remaining))


def push_due(
    now: float,
    last_push_at: float | None,
    every: float,
    changed: bool,
    erased_at: float | None = None,
) -> bool:
    """A journal push is due when the journal changed since the last push and that push is
    ``every`` old (state-based: a restart with changes pushes at once) — or at once when the
    erasure record changed after the last push (``erased_at``): until the branch holds it, a
    lost disk restored from the branch would bring the erased user back."""
    if last_push_at is None or last_push_at > now + PUSH_CLOCK_SLACK:
        return changed or erased_at is not None
    if erased_at is not None and erased_at > last_push_at:
        return True
    if not changed:
        return False
    return now - last_push_at >= every


@dataclass(frozen=True)
class JournalPackage:
    id: str
    created_at: float
    newest_at: float | None
    """Its newest entry (None: it carries no update, only the erasure records)."""


def packages_to_drop(
    packages: Sequence[JournalPackage],
    newest_backup_at: float | None,
    held: bool,
    margin: float = COVER_MARGIN,
) -> set[str]:
    """Journal packages the branch may let go: those whose every update the newest backup
    package on the branch holds (``newest_backup_at``, its start). Never while rotation is held
    (after a fresh start), never without a backup on the branch, and never the newest journal
    package (it carries the erasure records in full)."""
    if held or newest_backup_at is None or not packages:
        return set()
    newest = max(packages, key=lambda p: (p.created_at, p.id))
    return {
        p.id
        for p in packages
        if p is not newest and (p.newest_at is None or p.newest_at + margin <= newest_backup_at)
    }


def packages_since(
    packages: Sequence[JournalPackage], backup_at: float, margin: float = COVER_MARGIN
) -> list[JournalPackage]:
    """What a restore of a backup begun at ``backup_at`` takes from the branch, oldest first:
    every package holding an update that backup may lack, and the newest one (its erasure
    records)."""
    if not packages:
        return []
    ordered = sorted(packages, key=lambda p: (p.created_at, p.id))
    newest = ordered[-1]
    return [
        p
        for p in ordered
        if p is newest or (p.newest_at is not None and p.newest_at + margin > backup_at)
    ]
