"""Taking backups into the catalogue: the disk guard, the snapshot, the commit, the retention.

Used by the running watchdog and by the CLI alike (the same code: the watchdog's snapshot is
made by a worker process at low priority, ``data.maker``, which it waits for; a command with no
stack running makes it itself); the catalogue lock keeps them apart.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from conf.journal import SEGMENT_BYTES, journal_bytes
from conf.layout import DataLayout
from conf.units import MIB
from watchdog.data.catalogue import Backup, Catalogue, Manifest, Staged
from watchdog.data.erasure_copies import mirror_erasures
from watchdog.data.fs import free_bytes
from watchdog.data.maker import make_snapshot
from watchdog.data.snapshot import (
    COMPRESSED_TIERS,
    Proceed,
    SnapshotError,
    SnapshotRequest,
)
from watchdog.data.staging import Proven, prove_staged, stage_copy
from watchdog.rules import retention, schedule

log = logging.getLogger(__name__)

JOURNAL_HEADROOM = SEGMENT_BYTES
"""Room a backup always leaves for the update journal to grow by one segment: the journal is
what lets the bot acknowledge updates, so no backup may take its place on the disk."""


class Source(Protocol):
    """What a backup is taken of (``data.kinds``: the SQLite file, or a PostgreSQL database)."""

    def snapshot(self, catalogue: Catalogue, request: SnapshotRequest) -> tuple[Manifest, Path]: ...

    def expected_bytes(self, tier: str) -> int: ...


def fingerprint(manifest: Manifest) -> str:
    """What says two backups hold the same data: a dump's content sha256 (the dump file carries
    its own time), else the file's."""
    return manifest.extra.get("content_sha256", manifest.sha256)


class BackupSkipped(Exception):
    """No backup was taken, for a reason that is not a fault of the data (e.g. the disk is full)."""


@dataclass
class Outcome:
    backup: Backup | None
    skipped: str | None = None
    pruned: list[str] = field(default_factory=list)


def held(backups: list[Backup]) -> list[retention.Held]:
    return [retention.Held(b.id, b.tier, b.created_at, b.manifest.file_size) for b in backups]


def database_bytes(database: Path) -> int:
    total = 0
    for path in (database, Path(f"{database}-wal")):
        with contextlib.suppress(FileNotFoundError):
            total += path.stat().st_size
    return total


class BackupKeeper:
    def __init__(
        self,
        layout: DataLayout,
        keep: dict[str, int],
        min_free_bytes: int,
        app_version: str,
        source: Source | None = None,
        *,
        snapshot_here: bool = False,
    ) -> None:
        self.layout = layout
        self.source = source
        """None: the SQLite file at ``layout.database``."""
        self.snapshot_here = snapshot_here
        """The SQLite snapshot made by this process rather than a worker (``maker``)."""
        self.catalogue = Catalogue(layout)
        self.keep = keep
        self.min_free_bytes = min_free_bytes
        self.app_version = app_version

    def free_bytes(self) -> int:
        self.layout.backups.mkdir(parents=True, exist_ok=True)
        return free_bytes(self.layout.backups)

    def journal_bytes(self) -> int:
        """What the update journal holds on this disk (every file of its folder)."""
        return journal_bytes(self.layout.journal)

    def journal_headroom(self) -> int:
        """Room kept for the journal to grow (none where there is no journal: an app
        without one)."""
        return JOURNAL_HEADROOM if self.layout.journal.is_dir() else 0

    def margin_bytes(self) -> int:
        """Free space a backup must leave: BACKUP_MIN_FREE_MB plus the journal's headroom."""
        return self.min_free_bytes + self.journal_headroom()

    def expected_bytes(self, tier: str) -> int:
        """Room a snapshot needs while being made (a compressed tier holds both copies at once)."""
        if self.source is not None:
            return self.source.expected_bytes(tier)
        size = database_bytes(self.layout.database)
        return size * 2 if tier in COMPRESSED_TIERS else size

    def take(
        self,
        tier: str,
        reason: str,
        now: float,
        *,
        proceed: Proceed | None = None,
        skip_if_unchanged: bool = False,
    ) -> Outcome:
        """A verified backup in ``tier``, or Outcome(skipped=…). Raises SnapshotError, BackupSkipped."""
        with self.catalogue.locked():
            pruned = self._make_room(tier)
            request = SnapshotRequest(
                tier, reason, now, self.app_version, proceed or (lambda: True)
            )
            if self.source is not None:
                manifest, data_tmp = self.source.snapshot(self.catalogue, request)
            else:
                manifest, data_tmp = make_snapshot(
                    self.layout.database, self.catalogue, request, here=self.snapshot_here
                )
            if skip_if_unchanged:
                newest = max(self.catalogue.scan(), key=lambda b: b.created_at, default=None)
                if newest is not None and fingerprint(newest.manifest) == fingerprint(manifest):
                    data_tmp.unlink(missing_ok=True)
                    return Outcome(None, f"unchanged since backup {newest.id}", pruned)
            backup = self.catalogue.commit(manifest, data_tmp)
            pruned += self._apply_retention()
        mirror_erasures(self.layout)  # the erasure record travels with the backups' set
        log.info(
            "backup %s taken (%s): %.2f MB, %s rows, %.2f s",
            backup.id,
            reason,
            manifest.size_bytes / MIB,
            sum(manifest.rows.values()),
            manifest.duration_s,
        )
        return Outcome(backup, None, pruned)

    def stage(
        self, tier: str, reason: str, now: float, *, proceed: Proceed | None = None
    ) -> Staged:
        """The first half of a backup (``rules.deploy``): the copy, hashed and staged unverified
        (no tier counts it). Raises SnapshotError, BackupSkipped."""
        with self.catalogue.locked():
            self._make_room(tier)
            request = SnapshotRequest(
                tier, reason, now, self.app_version, proceed or (lambda: True)
            )
            staged = stage_copy(self.layout.database, self.catalogue, request)
        log.info(
            "%s copy %s staged (%s): %.2f MB in %.2f s; its proof runs with the bot up",
            tier,
            staged.id,
            reason,
            staged.size_bytes / MIB,
            staged.copy_seconds,
        )
        return staged

    def staged(self) -> list[Staged]:
        return self.catalogue.staged()

    def prove(self, staged: Staged, *, proceed: Proceed | None = None) -> Proven:
        """The second half: the staged copy proven and counted by its tier, or set aside.
        Raises SnapshotError when abandoned (the copy stays staged for the next try)."""
        with self.catalogue.locked():
            proven = prove_staged(self.catalogue, staged, proceed or (lambda: True))
            if proven.backup is not None:
                self._apply_retention()
        if proven.backup is not None:
            mirror_erasures(self.layout)
        return proven

    def _make_room(self, tier: str) -> list[str]:
        missing = schedule.room_for_backup(
            self.free_bytes(), self.expected_bytes(tier), self.margin_bytes()
        )
        if not missing:
            return []
        backups = self.catalogue.scan()
        by_id = {b.id: b for b in backups}
        doomed = retention.to_free(held(backups), missing)
        freeable = sum(by_id[backup_id].manifest.file_size for backup_id in doomed)
        if freeable >= missing:  # delete only when it makes enough room; else keep them all
            for backup_id in doomed:
                log.warning("disk pressure: removing backup %s to make room", backup_id)
                self.catalogue.remove(by_id[backup_id])
        else:
            doomed = []
        still = schedule.room_for_backup(
            self.free_bytes(), self.expected_bytes(tier), self.margin_bytes()
        )
        if still:
            raise BackupSkipped(
                f"not enough disk for a {tier} backup: {still / MIB:.1f} MB short "
                f"(needs {self.expected_bytes(tier) / MIB:.1f} MB plus a "
                f"{self.min_free_bytes / MIB:.0f} MB margin and "
                f"{self.journal_headroom() / MIB:.0f} MB for the update journal to grow, which holds "
                f"{self.journal_bytes() / MIB:.1f} MB); the newest backup of each tier is kept"
            )
        return doomed

    def _apply_retention(self) -> list[str]:
        backups = self.catalogue.scan()
        by_id = {b.id: b for b in backups}
        doomed = retention.over_retention(held(backups), self.keep)
        for backup_id in doomed:
            self.catalogue.remove(by_id[backup_id])
        return doomed

    def cleanup(self) -> list[Path]:
        with self.catalogue.locked():
            return self.catalogue.cleanup_leftovers()


__all__ = ["BackupKeeper", "BackupSkipped", "Outcome", "SnapshotError"]
