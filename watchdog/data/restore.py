"""An operator's restore of a chosen backup, local or offsite: verified first, then the live
database quarantined (never deleted), then installed. Used by ``python -m watchdog restore``
directly when no watchdog runs, and by the running watchdog when the command asks it to (it stops
and relaunches the bot)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from conf.journal import set_aside_segments
from conf.layout import DataLayout
from watchdog.data.catalogue import Backup, Catalogue, Manifest
from watchdog.data.cleanstop import forget_record, write_record
from watchdog.data.erasures import ErasureReport, apply_erasures
from watchdog.data.install import RESTORE_PREFIX, RestoreError, discard, swap_in
from watchdog.data.journal import restore_journal
from watchdog.data.offsite_candidates import OffsiteSource, fetch_offsite, first_good_offsite
from watchdog.data.quarantine import Quarantined, quarantine_database, update_note
from watchdog.data.recovery import check_deferred, prepare_backup
from watchdog.rules.recovery import latest_trusted
from watchdog.rules.schedule import FUTURE_SLACK
from watchdog.rules.startup import Proof

__all__ = ["OffsiteSource", "RestoreError", "choose", "restore_requested"]


@dataclass(frozen=True)
class ManualRestore:
    backup_id: str
    quarantine: str | None
    check_deferred: bool = False
    """Proven by its hash at install: the full check of the installed file is still owed."""
    erasures: ErasureReport | None = None

    def summary(self) -> str:
        kept = f"; the previous database is kept in {self.quarantine}" if self.quarantine else ""
        return f"restored backup {self.backup_id}{kept}{_erased(self.erasures)}"


def _erased(report: ErasureReport | None) -> str:
    if report is None or not (report.users or report.problems):
        return ""
    return f"; {report.summary()}"


def choose(catalogue: Catalogue, wanted: str, now: float | None = None) -> Backup:
    """``latest`` (the newest backup of any tier not dated in the future) or an id from the
    catalogue; else RestoreError. A backup dated in the future is restored only by its id."""
    backups = catalogue.scan()
    if wanted == "latest":
        if not backups:
            raise RestoreError("there are no backups to restore")
        newest = latest_trusted(backups, time.time() if now is None else now)
        if newest is None:
            raise RestoreError(
                f"every backup is dated more than {FUTURE_SLACK:.0f} s in the future (is the "
                "clock right?); `latest` picks none of them: name one by its id to restore it"
            )
        return newest
    for backup in backups:
        if backup.id == wanted:
            return backup
    raise RestoreError(
        f"{wanted!r} is not a verified backup in the catalogue (see `python -m watchdog list`); "
        "only backups the watchdog made and verified can be restored"
    )


def restore_chosen(layout: DataLayout, backup: Backup, now: float) -> ManualRestore:
    """Blocking; the bot must be stopped. Raises RestoreError before touching anything live
    when the backup does not prove itself (``prepare_backup``: sha256 of the copy, schema, and
    ``integrity_check`` unless its manifest records one of these very bytes — then the full
    check of the installed file is owed, see ``check_deferred``): one check at most."""
    try:  # proven and ready beside the live database first
        candidate = prepare_backup(layout, backup)
    except RestoreError as error:
        detail = str(error).removeprefix(f"backup {backup.id}: ")
        raise RestoreError(
            f"backup {backup.id} does not verify: {detail}; nothing changed"
        ) from None
    deferred = check_deferred(backup)
    proof: Proof = "sha256" if deferred else "full-check"
    moved, erased = install_chosen(layout, candidate, f"backup {backup.id}", backup.id, now, proof)
    return ManualRestore(backup.id, str(moved.folder) if moved else None, deferred, erased)


def install_chosen(
    layout: DataLayout,
    candidate: Path,
    what: str,
    backup_id: str,
    now: float,
    proof: Proof = "full-check",
) -> tuple[Quarantined | None, ErasureReport]:
    """Put an operator's proven candidate in place: the live database to quarantine, the
    candidate renamed in, every erasure made again on it (the operator chose an earlier state
    of the data, never an erased user back). The old file's rows are kept in quarantine, not
    merged back. The file is then as we left it: a clean-stop record says so (and what proved
    it), so the next start needs no full check before launch (``rules.startup``)."""
    forget_record(layout)
    try:
        moved = quarantine_database(
            layout, f"manual restore of {what}", "set aside by an operator's restore", now
        )
        swap_in(layout, candidate)
    finally:
        discard(candidate)
    erased = apply_erasures(layout)
    write_record(layout, proof, now)
    if moved is not None:
        moved = update_note(
            moved, restored_from=backup_id, salvage={"status": "not merged (manual restore)"}
        )
    return moved, erased


def restore_from_offsite(layout: DataLayout, store: OffsiteSource, wanted: str, now: float) -> str:
    """An operator's restore from the offsite branch: an id, or ``latest`` — the first of every
    offsite backup, newest first (dated in the future last), that proves itself. Fetched and
    proven first, then the live database quarantined and the backup installed. Blocking; the
    bot must be stopped. Raises RestoreError or the store's error with nothing live changed."""
    refused: list[str] = []
    if wanted == "latest":
        fetched = first_good_offsite(layout, store, now, refused)
        if fetched is None:
            raise RestoreError(
                "no offsite backup passed its checks: "
                + ("; ".join(refused) or "there are none")
                + "; nothing changed"
            )
    else:
        try:
            fetched = fetch_offsite(layout, store, wanted)
        except RestoreError as error:
            raise RestoreError(f"offsite {error}; nothing changed") from None
    temporary, manifest = fetched
    # The branch's journal first: its erasure records are made again at the install.
    try:
        brought = restore_journal(layout.journal, store, manifest.created_at)
    except BaseException:
        discard(temporary)
        raise
    moved, erased = install_chosen(
        layout, temporary, f"offsite backup {manifest.id}", manifest.id, now
    )
    kept = f"; the previous database is kept in {moved.folder}" if moved else ""
    skipped = f"; refused first: {'; '.join(refused)}" if refused else ""
    journal = f"; {brought.summary()}" if brought is not None else ""
    return f"restored offsite backup {manifest.id}{skipped}{kept}{journal}{_erased(erased)}"


def restore_requested(
    layout: DataLayout, wanted: str, now: float, offsite: OffsiteSource | None = None
) -> str:
    """The one entry for an operator's restore, from the CLI or the admin API: ``wanted`` is
    ``latest`` or an id, from the offsite branch when ``offsite`` is given. Returns a summary;
    raises RestoreError (or the offsite store's error) with nothing live changed."""
    return restore_and_tell(layout, wanted, now, offsite)[0]


def restore_and_tell(
    layout: DataLayout, wanted: str, now: float, offsite: OffsiteSource | None = None
) -> tuple[str, bool]:
    """``restore_requested``, also saying whether the installed file's full check is still owed
    (it was proven by its hash): the running watchdog then runs it with the bot back."""
    if offsite is not None:
        return restore_from_offsite(layout, offsite, wanted, now), False
    done = restore_chosen(layout, choose(Catalogue(layout), wanted), now)
    return done.summary(), done.check_deferred


def prove_requested(
    layout: DataLayout, wanted: str, now: float, offsite: OffsiteSource | None = None
) -> tuple[Manifest, list[str]]:
    """What ``restore_requested`` would install, proven the same way (sha256, schema,
    integrity_check) and then discarded: the live database is not touched. Returns its manifest
    and the candidates refused on the way. Raises like ``restore_requested``."""
    refused: list[str] = []
    if offsite is None:
        backup = choose(Catalogue(layout), wanted, now)
        # Not on anyone's critical path: a dry run proves it fully (its one check).
        discard(prepare_backup(layout, backup, trust_hash=False))
        return backup.manifest, refused
    if wanted == "latest":
        fetched = first_good_offsite(layout, offsite, now, refused)
        if fetched is None:
            raise RestoreError(
                "no offsite backup passed its checks: " + ("; ".join(refused) or "there are none")
            )
    else:
        fetched = fetch_offsite(layout, offsite, wanted)
    discard(fetched[0])
    return fetched[1], refused


LEFTOVER_PREFIXES = (RESTORE_PREFIX, ".tmp-offsite-")


def journal_set_aside(layout: DataLayout, now: float) -> str:
    """After a restore made on purpose to an earlier state: the journal's segments are moved
    aside (kept, never replayed); what was done, in words."""
    label = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    target = set_aside_segments(layout.journal, label)
    if target is None:
        return "the journal held nothing to replay"
    return f"the journal was not replayed: its segments are kept in {target}"


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
