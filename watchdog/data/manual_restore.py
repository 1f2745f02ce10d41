"""An operator's restore of a chosen backup: verify it first, then quarantine the live database
(never delete it), then install. Used by ``python -m watchdog restore`` directly when no watchdog
runs, and by the running watchdog when the command asks it to (it stops and relaunches the bot)."""

from __future__ import annotations

from dataclasses import dataclass

from conf.layout import DataLayout
from watchdog.data.catalogue import Backup, Catalogue
from watchdog.data.quarantine import quarantine_database, update_note
from watchdog.data.restore import RestoreError, discard, prepare_backup, swap_in
from watchdog.data.snapshot import verify_backup


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
