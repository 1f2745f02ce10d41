"""Recovery, one path for every cause: quarantine → newest backup that verifies (local, then
offsite) → install → salvage → report. Every step can be interrupted and run again: the next
start finds either a good database, or a missing one with backups (and recovers again), and any
salvage still pending is finished before the bot starts."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from conf.layout import DataLayout
from watchdog.data.catalogue import Catalogue, Manifest
from watchdog.data.quarantine import Quarantined, list_quarantine, quarantine_database, update_note
from watchdog.data.restore import (
    RESTORE_PREFIX,
    RestoreError,
    install_backup,
    install_file,
    ready_candidate,
    swap_in,
)
from watchdog.data.salvage import SalvageReport, salvage_and_merge
from watchdog.data.snapshot import Verdict, verify_stored_file
from watchdog.rules.recovery import candidates_newest_first

log = logging.getLogger(__name__)

OffsiteFetch = Callable[[Path], Manifest]
"""Writes the newest offsite backup's plain database to the path given; raises on failure."""


@dataclass
class RecoveryResult:
    reason: str
    quarantine: str | None = None
    restored_from: str | None = None
    source: str | None = None  # "local" | "offsite" | None (fresh database)
    rejected: list[str] = field(default_factory=list)
    salvage: dict[str, object] | None = None
    seconds: float = 0.0

    @property
    def fresh(self) -> bool:
        return self.restored_from is None

    def summary(self) -> str:
        if self.fresh:
            head = f"NO USABLE BACKUP: started a fresh, empty database ({self.reason})"
        else:
            head = (
                f"database restored from {self.source} backup {self.restored_from} ({self.reason})"
            )
        merged = sum((self.salvage or {}).get("merged", {}).values()) if self.salvage else 0  # type: ignore[union-attr]
        tail = f"; {merged} rows salvaged from the damaged file" if self.salvage else ""
        where = f"; damaged files kept in {self.quarantine}" if self.quarantine else ""
        return head + tail + where


def recover(
    layout: DataLayout,
    reason: str,
    detail: str,
    now: float,
    offsite: OffsiteFetch | None = None,
) -> RecoveryResult:
    """Blocking. The bot must already be stopped."""
    started = time.monotonic()
    result = RecoveryResult(reason=reason)
    moved = quarantine_database(layout, reason, detail, now)
    if moved is not None:
        result.quarantine = str(moved.folder)
        log.warning("quarantined the database in %s (%s)", moved.folder, reason)

    catalogue = Catalogue(layout)
    for backup in candidates_newest_first(catalogue.scan()):
        # sha256 of the stored file here; integrity_check runs once, on the copy being installed
        # (install_file), which is the file that will be used.
        try:
            verdict = verify_stored_file(backup)
        except OSError as error:
            verdict = Verdict(False, f"unreadable: {error.strerror or error}")
        if not verdict.ok:
            result.rejected.append(f"{backup.id}: {verdict.detail}")
            log.error("backup %s is not usable: %s", backup.id, verdict.detail)
            continue
        if moved is not None:  # said before the swap, so a salvage left pending can resume
            moved = update_note(moved, restored_from=backup.id, source="local")
        try:
            install_backup(layout, backup)
        except RestoreError as error:
            result.rejected.append(str(error))
            log.error("%s", error)
            if moved is not None:
                moved = update_note(moved, restored_from=None, source=None)
            continue
        result.restored_from, result.source = backup.id, "local"
        break

    if result.restored_from is None and offsite is not None:
        temporary = layout.database.parent / f"{RESTORE_PREFIX}offsite.db"
        try:
            manifest = offsite(temporary)
            install_file(layout, temporary, manifest)
        except Exception as error:  # any failure of the offsite store: reported, then go on
            result.rejected.append(f"offsite: {error}")
            log.error("offsite restore failed: %s", error)
        else:
            result.restored_from, result.source = manifest.id, "offsite"
        finally:
            temporary.unlink(missing_ok=True)

    for entry in list_quarantine(layout):
        pending = entry.note.get("salvage", {}).get("status") == "pending"
        if pending and not entry.note.get("restored_from"):
            # This recovery's quarantine, or one an interrupted recovery left before installing.
            entry = update_note(entry, restored_from=result.restored_from, source=result.source)
        report = finish_salvage(layout, entry, fresh=result.fresh)
        if report is not None and moved is not None and entry.folder == moved.folder:
            result.salvage = report.as_dict()
    result.seconds = time.monotonic() - started
    return result


def finish_salvage(
    layout: DataLayout, entry: Quarantined, fresh: bool = False
) -> SalvageReport | None:
    """Salvage a quarantined database whose salvage is still pending; merge when there is a
    restored database to merge into (on a fresh start the salvage file is kept for by-hand use)."""
    if entry.note.get("salvage", {}).get("status") != "pending" or entry.database is None:
        return None
    restored = entry.note.get("restored_from")
    if not restored and not fresh:
        return None  # interrupted before a backup was installed: the next recovery finishes it
    target = layout.database if restored and layout.database.exists() else None
    wal = entry.folder / f"{entry.note.get('database_name')}-wal"
    report = salvage_and_merge(entry.database, wal, entry.folder / "salvage.db", target)
    status = "merged" if target is not None else "kept"
    update_note(entry, salvage={"status": status, **report.as_dict()})
    log.warning(
        "salvage of %s: read %s, merged %s, rejected %s",
        entry.folder.name,
        report.read,
        report.merged,
        report.rejected,
    )
    return report


def resume_pending_salvage(layout: DataLayout) -> list[SalvageReport]:
    """At start-up: finish merges a killed watchdog left pending (idempotent by primary key)."""
    reports = []
    for entry in list_quarantine(layout):
        report = finish_salvage(layout, entry)
        if report is not None:
            reports.append(report)
    return reports


def restore_from_offsite(layout: DataLayout, store: object, wanted: str, now: float) -> str:
    """An operator's restore from the offsite branch (``latest`` or an id): fetch and verify
    first, then quarantine the live database and install. Blocking; the bot must be stopped."""
    temporary = layout.database.parent / f"{RESTORE_PREFIX}offsite.db"
    try:
        manifest = store.fetch(None if wanted == "latest" else wanted, temporary)  # type: ignore[attr-defined]
        ready_candidate(temporary, manifest)  # ready before the live database is touched
        moved = quarantine_database(
            layout, f"restore of offsite backup {manifest.id}", "set aside by an operator", now
        )
        swap_in(layout, temporary)
    finally:
        temporary.unlink(missing_ok=True)
    if moved is not None:
        update_note(
            moved, restored_from=manifest.id, salvage={"status": "not merged (manual restore)"}
        )
    kept = f"; the previous database is kept in {moved.folder}" if moved else ""
    return f"restored offsite backup {manifest.id}{kept}"
