"""The watchdog's bounded history: the database's size over time and each backup's size and
duration, for the status page's charts. Plain data in memory, fed by the runtime; ``now`` is
always passed in.

Bounded twice: by age (``WINDOW``, a week) and by count (``MAX_SIZES``, ``MAX_BACKUPS``), so a
watchdog that runs for months holds the same few kilobytes. The database's size is sampled at
most once per ``SIZE_STEP`` (a newer sample in the same step replaces the older). Nothing is
written to disk: after a restart the backups' manifests (which record each backup's time, size
and duration) give the past back, ``note_backups`` being fed the whole catalogue.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

WINDOW = 7 * 86400.0
"""How far back the history reaches (seconds)."""
SIZE_STEP = 600.0
"""At most one database size sample per 10 minutes."""
MAX_SIZES = int(WINDOW // SIZE_STEP) + 1
MAX_BACKUPS = 1000


@dataclass(frozen=True)
class SizePoint:
    at: float
    size_bytes: int


@dataclass(frozen=True)
class BackupPoint:
    at: float
    id: str
    tier: str
    size_bytes: int
    duration_s: float


@dataclass
class History:
    sizes: deque[SizePoint] = field(default_factory=lambda: deque(maxlen=MAX_SIZES))
    backups: dict[str, BackupPoint] = field(default_factory=dict)
    changes: int = 0
    """Counts every change: what a cache of the charts is keyed on."""

    def note_size(self, at: float, size_bytes: int) -> None:
        """The database's size now: one point per ``SIZE_STEP``, the newest in a step kept.
        The same size again in the same step is not a change (the guard says it every few
        seconds): only the point's moment moves, which a chart redrawn by the minute shows."""
        point = SizePoint(at, size_bytes)
        if self.sizes and int(self.sizes[-1].at // SIZE_STEP) == int(at // SIZE_STEP):
            if self.sizes[-1].size_bytes != size_bytes:
                self.changes += 1
            self.sizes[-1] = point
        else:
            self.changes += 1
            self.sizes.append(point)
        while self.sizes and self.sizes[0].at < at - WINDOW:
            self.sizes.popleft()

    def note_backups(self, points: Iterable[BackupPoint], now: float) -> None:
        """Backups seen in the catalogue (known ones are kept once); the oldest beyond the
        window or the count go."""
        for point in points:
            if point.at >= now - WINDOW:
                self.backups.setdefault(point.id, point)
        kept = sorted(
            (p for p in self.backups.values() if p.at >= now - WINDOW), key=lambda p: p.at
        )
        kept = kept[-MAX_BACKUPS:]
        if [p.id for p in kept] != list(self.backups):
            self.changes += 1
        self.backups = {p.id: p for p in kept}

    def database_sizes(self, now: float) -> list[SizePoint]:
        """The database's size over the window, oldest first: the samples taken while this
        watchdog ran, and before them what the backups measured (a backup's size is the
        database's at that moment)."""
        since = now - WINDOW
        first = self.sizes[0].at if self.sizes else now
        before = [
            SizePoint(p.at, p.size_bytes) for p in self.backups.values() if since <= p.at < first
        ]
        live = [p for p in self.sizes if p.at >= since]
        return sorted(before, key=lambda p: p.at) + live

    def backup_runs(self, now: float) -> list[BackupPoint]:
        """Backups in the window, oldest first."""
        return [
            p for p in sorted(self.backups.values(), key=lambda p: p.at) if p.at >= now - WINDOW
        ]
