"""Which backups to delete: plain functions over (id, tier, created_at, size) records."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Held:
    id: str
    tier: str
    created_at: float
    size: int


def newest_per_tier(backups: Sequence[Held]) -> set[str]:
    newest: dict[str, Held] = {}
    for backup in backups:
        current = newest.get(backup.tier)
        if current is None or (backup.created_at, backup.id) > (current.created_at, current.id):
            newest[backup.tier] = backup
    return {backup.id for backup in newest.values()}


def over_retention(backups: Sequence[Held], keep: dict[str, int]) -> list[str]:
    """Ids beyond each tier's count, oldest first. The newest of a tier is always kept."""
    doomed: list[Held] = []
    for tier in {backup.tier for backup in backups}:
        in_tier = sorted(
            (b for b in backups if b.tier == tier), key=lambda b: (b.created_at, b.id), reverse=True
        )
        doomed.extend(in_tier[max(1, keep.get(tier, 1)) :])
    return [b.id for b in sorted(doomed, key=lambda b: (b.created_at, b.id))]


def to_free(backups: Sequence[Held], needed_bytes: int) -> list[str]:
    """Under disk pressure: oldest first until ``needed_bytes`` are freed, never a tier's newest.

    Returns what to delete; it may free less than needed when nothing else may go.
    """
    protected = newest_per_tier(backups)
    chosen: list[str] = []
    freed = 0
    for backup in sorted(backups, key=lambda b: (b.created_at, b.id)):
        if freed >= needed_bytes:
            break
        if backup.id in protected:
            continue
        chosen.append(backup.id)
        freed += backup.size
    return chosen
