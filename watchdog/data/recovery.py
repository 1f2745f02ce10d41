"""Recovery, one path for every cause: quarantine → the first candidate that proves itself
(every local backup newest first, then every offsite one) → install → report; the quarantined
file's salvage is left pending and runs after the bot is back (:mod:`watchdog.data.salvage_job`:
a page scan of a big damaged file takes tens of seconds). Every step can be interrupted and run
again: the next start finds either a good database, or a missing one with backups (and recovers
again), and a salvage still pending is done again once the bot is back. Which candidate comes
first is ``rules.recovery``'s decision.

A backup is input from outside the program's trust boundary (DESIGN, "Trust boundary"): a local
backup's manifest and file can both be rewritten by anyone with write access to DATA_DIR, and an
offsite package is as good as the branch it came from. So every file that is to become the live
database — in a recovery, an operator's ``restore`` (local or ``--from-git``), a drill — is made
ready beside the live database and must prove, on that very copy: the sha256 its manifest gives
(and, offsite, whatever ``OffsiteStore.fetch`` proves: MAC, parts, decryption, size), the bot's
own schema and nothing more (:func:`schema_problem`), and ``integrity_check``.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from conf.journal import list_segments
from conf.layout import DataLayout
from watchdog.data.catalogue import Backup, Catalogue
from watchdog.data.erasures import apply_erasures
from watchdog.data.install import RESTORE_PREFIX as RESTORE_PREFIX
from watchdog.data.install import RestoreError as RestoreError
from watchdog.data.install import candidate_path, check_schema, discard, set_wal, swap_in
from watchdog.data.install import schema_problem as schema_problem
from watchdog.data.journal import restore_journal
from watchdog.data.offsite_candidates import OffsiteSource as OffsiteSource
from watchdog.data.offsite_candidates import first_good_offsite as first_good_offsite
from watchdog.data.quarantine import NOTE as NOTE
from watchdog.data.quarantine import Quarantined as Quarantined
from watchdog.data.quarantine import list_quarantine as list_quarantine
from watchdog.data.quarantine import parse_note as parse_note
from watchdog.data.quarantine import quarantine_database as quarantine_database
from watchdog.data.quarantine import update_note as update_note
from watchdog.data.quarantine import write_note as write_note
from watchdog.data.salvage_job import PENDING
from watchdog.data.snapshot import (
    integrity_problem,
    materialize,
    sha256_of,
)
from watchdog.rules.recovery import (
    candidates_newest_first,
    full_check_needed,
    future_dated,
)

log = logging.getLogger(__name__)


# -- proving one file ----------------------------------------------------------------------


def prepare_backup(layout: DataLayout, backup: Backup, *, trust_hash: bool = True) -> Path:
    """The backup's database materialized beside the live one, proven and switched to WAL; the
    caller swaps it in (or discards it). Nothing live is touched. Raises RestoreError.

    The copy is hashed as it is made and must match the manifest's sha256; the schema must be
    the bot's. A backup whose manifest records a full ``integrity_check`` of these very bytes
    (``rules.recovery.full_check_needed``) is proven by that: no second check on the critical
    path (the caller has the installed file checked once the bot is back, see
    :func:`check_deferred`). Otherwise ``integrity_check`` runs too: for a plain backup on the
    stored file while it is being copied (SQLite releases the GIL; the machine has a second
    core), for a compressed one after decompression, as it must.
    """
    temporary = candidate_path(layout, backup.id)
    manifest = backup.manifest
    try:
        problem: str | None = None
        if manifest.compression is not None and sha256_of(backup.data_path) != manifest.file_sha256:
            raise RestoreError(
                f"backup {backup.id}: sha256 mismatch: the stored file is not what was backed up"
            )
        if check_deferred(backup, trust_hash):
            same = materialize(backup, temporary) == manifest.sha256
        elif manifest.compression is not None:
            same = materialize(backup, temporary) == manifest.sha256
            problem = integrity_problem(temporary) if same else None
        else:
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="restore-check") as pool:
                checking = pool.submit(integrity_problem, backup.data_path)
                same = materialize(backup, temporary) == manifest.sha256
                problem = checking.result()
        if not same:
            raise RestoreError(
                f"backup {backup.id}: sha256 mismatch: the copy is not what was backed up"
            )
        check_schema(temporary, backup.id)
        if problem:
            raise RestoreError(f"backup {backup.id}: integrity_check failed: {problem}")
        set_wal(temporary)
    except (OSError, sqlite3.DatabaseError, ValueError) as error:
        discard(temporary)
        raise RestoreError(f"backup {backup.id}: {error}") from None
    except BaseException:
        discard(temporary)
        raise
    return temporary


def check_deferred(backup: Backup, trust_hash: bool = True) -> bool:
    """Whether :func:`prepare_backup` proves ``backup`` by its hash alone, leaving the full
    check of the installed file for after the bot is back."""
    manifest = backup.manifest
    return not full_check_needed(manifest.checked_sha256, manifest.sha256, trust_hash)


# -- walking every candidate ---------------------------------------------------------------


def local_candidates(layout: DataLayout, now: float) -> list[Backup]:
    """Every committed local backup, in the order to try them."""
    return candidates_newest_first(Catalogue(layout).scan(), now)


def first_good_local(
    layout: DataLayout, now: float, rejected: list[str], trust_hash: bool = True
) -> tuple[Path, Backup] | None:
    """The first local backup that proves itself (:func:`prepare_backup`), made ready beside the
    live database; each one refused on the way is appended to ``rejected`` with its id and the
    reason."""
    for backup in local_candidates(layout, now):
        if future_dated(backup.created_at, now):
            log.warning("backup %s is dated in the future: tried after every other", backup.id)
        try:
            if not backup.data_path.is_file():
                raise RestoreError(
                    f"backup {backup.id}: data file {backup.data_path.name} is missing"
                )
            return prepare_backup(layout, backup, trust_hash=trust_hash), backup
        except RestoreError as error:
            rejected.append(f"local {error}")
            log.error("local %s", error)
    return None


# -- the path ------------------------------------------------------------------------------

SHOWN_REFUSALS = 5
"""Refused candidates named in the summary (the admins' alert); /health lists them all."""


@dataclass
class RecoveryResult:
    reason: str
    quarantine: str | None = None
    restored_from: str | None = None
    source: str | None = None  # "local" | "offsite" | None (fresh database)
    rejected: list[str] = field(default_factory=list)
    salvage: dict[str, object] | None = None
    journal: dict[str, object] | None = None
    """From offsite only: the journal packages brought back into DATA_DIR/journal (replay
    rebuilds the updates after the backup from them)."""
    erasures: dict[str, object] | None = None
    """The erasure record made again on the installed (and merged) database."""
    rows: dict[str, int] | None = None
    """Rows per table of the installed backup, as its manifest gives them (so the bot need not
    wait for a count of a big file; the full check with the bot up counts again)."""
    check_deferred: bool = False
    """The installed backup was proven by its hash (its manifest records a full check of those
    bytes): the full check of the installed file is still to run, with the bot back."""
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
        return head + self.salvage_said() + self._rest()

    def salvage_said(self) -> str:
        """What the summary says of the damaged file's salvage ("" when there is none)."""
        if not self.salvage:
            return ""
        if self.salvage.get("status") == PENDING:
            return "; the damaged file's salvage runs with the bot back"
        merged = self.salvage.get("merged")
        total = sum(merged.values()) if isinstance(merged, dict) else 0
        return f"; {total} rows salvaged from the damaged file"

    def _rest(self) -> str:
        where = f"; damaged files kept in {self.quarantine}" if self.quarantine else ""
        journal = self.journal or {}
        brought = (
            f"; {journal.get('updates', 0)} journal lines brought back from offsite"
            if self.journal
            else ""
        )
        erased = (self.erasures or {}).get("users") or 0
        again = f"; erasures made again for {erased} users" if erased else ""
        trouble = (self.erasures or {}).get("problems") or []
        damaged = f"; ERASURE RECORD PROBLEMS: {'; '.join(map(str, trouble))}" if trouble else ""
        return brought + again + damaged + self.refusals() + where

    def refusals(self) -> str:
        """The candidates refused on the way, with their ids and reasons ("" if none)."""
        if not self.rejected:
            return ""
        shown = "; ".join(self.rejected[:SHOWN_REFUSALS])
        more = len(self.rejected) - SHOWN_REFUSALS
        return f"; refused {len(self.rejected)}: {shown}" + (
            f"; and {more} more" if more > 0 else ""
        )


def recover(
    layout: DataLayout,
    reason: str,
    detail: str,
    now: float,
    offsite: OffsiteSource | None = None,
    *,
    trust_hash: bool = True,
) -> RecoveryResult:
    """Blocking. The bot must already be stopped. Every refused candidate is named in
    ``rejected``; with none left, the result is a fresh start (``fresh``). ``trust_hash`` False:
    every local candidate passes ``integrity_check`` before it is installed (after a file proven
    by its hash alone failed its full check)."""
    started = time.monotonic()
    result = RecoveryResult(reason=reason)
    moved = quarantine_database(layout, reason, detail, now)
    if moved is not None:
        result.quarantine = str(moved.folder)
        log.warning("quarantined the database in %s (%s)", moved.folder, reason)

    chosen = first_good_local(layout, now, result.rejected, trust_hash)
    if chosen is not None:
        candidate, backup = chosen
        if moved is not None:  # said before the swap, so a salvage left pending can resume
            moved = update_note(moved, restored_from=backup.id, source="local")
        if _install(layout, candidate, result):
            result.restored_from, result.source = backup.id, "local"
            result.rows = dict(backup.manifest.rows)
            result.check_deferred = check_deferred(backup, trust_hash)
        elif moved is not None:
            moved = update_note(moved, restored_from=None, source=None)
    if result.restored_from is None and offsite is not None:
        fetched = first_good_offsite(layout, offsite, now, result.rejected)
        if fetched is not None and _install(layout, fetched[0], result):
            result.restored_from, result.source = fetched[1].id, "offsite"
            result.rows = dict(fetched[1].rows)
            # A lost disk lost the journal too: the branch's copy of it, for replay.
            brought = restore_journal(layout.journal, offsite, fetched[1].created_at)
            result.journal = brought.as_dict() if brought is not None else None
    if result.restored_from is None and offsite is not None and not list_segments(layout.journal):
        # Nothing to restore and no journal here: the branch's journal rebuilds what it holds.
        brought = restore_journal(layout.journal, offsite, 0.0)
        result.journal = brought.as_dict() if brought is not None else None

    for entry in list_quarantine(layout):
        if entry.note.get("salvage", {}).get("status") != PENDING:
            continue
        if not entry.note.get("restored_from"):
            # This recovery's quarantine, or one an interrupted recovery left before installing:
            # its salvage runs once the bot is back (``salvage_job``), merging into what is
            # installed now, or kept in its salvage.db after a fresh start.
            entry = update_note(
                entry,
                restored_from=result.restored_from,
                source=result.source,
                fresh_start=result.fresh,
            )
        if moved is not None and entry.folder == moved.folder:
            result.salvage = {"status": PENDING}
    # Whatever was installed and merged, and however old: no erased user comes back with it.
    result.erasures = apply_erasures(layout).as_dict()
    result.seconds = time.monotonic() - started
    return result


def _install(layout: DataLayout, candidate: Path, result: RecoveryResult) -> bool:
    """Rename a proven candidate into place; False (said in ``result``) if it cannot be."""
    try:
        swap_in(layout, candidate)
    except (RestoreError, OSError) as error:
        result.rejected.append(f"installing {candidate.name}: {error}")
        log.error("installing %s failed: %s", candidate.name, error)
        return False
    finally:
        discard(candidate)
    return True
