"""An operator's restore of a chosen backup, local or offsite: verified first, then the live
database quarantined (never deleted), then installed. Used by ``python -m watchdog restore``
directly when no watchdog runs, and by the running watchdog when the command asks it to (it stops
and relaunches the bot)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from conf.layout import DataLayout
from watchdog.data.catalogue import Backup, Catalogue, Manifest
from watchdog.data.recovery import (
    RESTORE_PREFIX,
    RestoreError,
    discard,
    prepare_backup,
    quarantine_database,
    set_wal,
    swap_in,
    update_note,
)
from watchdog.data.snapshot import verify_backup


class OffsiteSource(Protocol):
    def fetch(self, entry_id: str | None, dest: Path) -> Manifest: ...


@dataclass(frozen=True)
class ManualRestore:
    backup_id: str
    quarantine: str | None

    def summary(self) -> str:
        kept = f"; the previous database is kept in {self.quarantine}" if self.quarantine else ""
        return f"restored backup {self.backup_id}{kept}"


def choose(catalogue: Catalogue, wanted: str) -> Backup:
    """``latest`` (the newest backup of any tier) or an id from the catalogue; else RestoreError."""
    backups = catalogue.scan()
    if wanted == "latest":
        if not backups:
            raise RestoreError("there are no backups to restore")
        return backups[-1]
    for backup in backups:
        if backup.id == wanted:
            return backup
    raise RestoreError(
        f"{wanted!r} is not a verified backup in the catalogue (see `python -m watchdog list`); "
        "only backups the watchdog made and verified can be restored"
    )


def restore_chosen(layout: DataLayout, backup: Backup, now: float) -> ManualRestore:
    """Blocking; the bot must be stopped. Raises RestoreError before touching anything live
    when the backup does not verify."""
    verdict = verify_backup(backup, layout.run)
    if not verdict.ok:
        raise RestoreError(f"backup {backup.id} does not verify: {verdict.detail}; nothing changed")
    candidate = prepare_backup(layout, backup)  # ready beside the live database before touching it
    try:
        moved = quarantine_database(
            layout, f"manual restore of {backup.id}", "set aside by an operator's restore", now
        )
        swap_in(layout, candidate)
    finally:
        discard(candidate)
    if moved is not None:
        # The operator chose this state: rows of the old file are kept, not merged back.
        update_note(
            moved, restored_from=backup.id, salvage={"status": "not merged (manual restore)"}
        )
    return ManualRestore(backup.id, str(moved.folder) if moved else None)


def restore_from_offsite(layout: DataLayout, store: OffsiteSource, wanted: str, now: float) -> str:
    """An operator's restore from the offsite branch (``latest`` or an id): fetch and verify
    first, then quarantine the live database and install. Blocking; the bot must be stopped."""
    temporary = layout.database.parent / f"{RESTORE_PREFIX}offsite.db"
    try:
        manifest = store.fetch(None if wanted == "latest" else wanted, temporary)
        set_wal(temporary)  # fetch proved it; ready before the live database is touched
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


def restore_requested(
    layout: DataLayout, wanted: str, now: float, offsite: OffsiteSource | None = None
) -> str:
    """The one entry for an operator's restore, from the CLI or the admin API: ``wanted`` is
    ``latest`` or an id, from the offsite branch when ``offsite`` is given. Returns a summary;
    raises RestoreError (or the offsite store's error) with nothing live changed."""
    if offsite is not None:
        return restore_from_offsite(layout, offsite, wanted, now)
    return restore_chosen(layout, choose(Catalogue(layout), wanted), now).summary()


LEFTOVER_PREFIXES = (RESTORE_PREFIX, ".tmp-offsite-")


def cleanup_restore_leftovers(layout: DataLayout) -> list[Path]:
    """Copies of backups left by an interrupted restore or offsite fetch (never the only copy
    of anything)."""
    folder = layout.database.parent
    if not folder.is_dir():
        return []
    removed = [path for path in folder.iterdir() if path.name.startswith(LEFTOVER_PREFIXES)]
    for path in removed:
        path.unlink(missing_ok=True)
    return removed
