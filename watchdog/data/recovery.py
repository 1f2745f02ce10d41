"""Recovery, one path for every cause: quarantine → the first candidate that proves itself
(every local backup newest first, then every offsite one) → install → salvage → report. Every
step can be interrupted and run again: the next start finds either a good database, or a missing
one with backups (and recovers again), and any salvage still pending is finished before the bot
starts. The path reads in this file (which candidate comes first is ``rules.recovery``'s
decision, what salvage reads is ``salvage``'s).

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
import os
import sqlite3
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import zstandard

from conf.journal import list_segments
from conf.layout import DataLayout
from conf.schema import expected_schema
from watchdog.data.catalogue import Backup, Catalogue, Manifest
from watchdog.data.database import connect, read_schema
from watchdog.data.erasures import apply_erasures, erase_again, gather
from watchdog.data.fs import fsync_dir, fsync_file
from watchdog.data.journal import restore_journal
from watchdog.data.quarantine import NOTE as NOTE
from watchdog.data.quarantine import Quarantined as Quarantined
from watchdog.data.quarantine import list_quarantine as list_quarantine
from watchdog.data.quarantine import parse_note as parse_note
from watchdog.data.quarantine import quarantine_database as quarantine_database
from watchdog.data.quarantine import update_note as update_note
from watchdog.data.quarantine import write_note as write_note
from watchdog.data.salvage import SalvageReport, salvage_and_merge
from watchdog.data.snapshot import (
    integrity_problem,
    materialize,
    sha256_of,
)
from watchdog.rules.recovery import (
    candidates_newest_first,
    full_check_needed,
    future_dated,
    schema_differences,
)

log = logging.getLogger(__name__)


RESTORE_PREFIX = ".tmp-restore-"


class RestoreError(Exception):
    """The backup could not be installed; the live database path was not touched."""


class OffsiteEntryLike(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def created_at(self) -> float: ...


class RefusedLike(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def reason(self) -> str: ...


class CandidatesLike(Protocol):
    @property
    def entries(self) -> Sequence[OffsiteEntryLike]: ...

    @property
    def refused(self) -> Sequence[RefusedLike]: ...


class OffsiteSource(Protocol):
    """What recovery and restore need of ``watchdog.offsite.OffsiteStore``."""

    def candidates(self, now: float | None = None) -> CandidatesLike: ...

    def fetch(self, entry_id: str | None, dest: Path) -> Manifest: ...


# -- proving one file ----------------------------------------------------------------------


def schema_problem(path: Path) -> str | None:
    """None when the file's schema is the bot's (``conf.schema.expected_schema``, nothing more);
    else what differs. Read with trusted_schema off: nothing in the file runs."""
    try:
        actual = read_schema(path)
    except sqlite3.DatabaseError as error:
        return f"schema unreadable: {error}"
    differences = schema_differences(actual, expected_schema())
    if not differences:
        return None
    shown = "; ".join(differences[:5]) + (
        f"; and {len(differences) - 5} more" if len(differences) > 5 else ""
    )
    return f"not the bot's schema: {shown}"


def check_schema(path: Path, backup_id: str) -> None:
    """RestoreError naming what differs when the file's schema is not the bot's."""
    problem = schema_problem(path)
    if problem:
        raise RestoreError(f"backup {backup_id}: {problem}")


def set_wal(candidate: Path) -> None:
    """A backup is stored in rollback-journal mode; the live database runs in WAL."""
    connection = connect(candidate, "rw")
    try:
        connection.execute("PRAGMA journal_mode=WAL")
    finally:
        connection.close()
    fsync_file(candidate)


def swap_in(layout: DataLayout, candidate: Path) -> None:
    """Rename a ready candidate into place. The caller has moved the old database and its
    -wal/-shm aside first: a stale -wal beside the restored file would be replayed into it."""
    for path in (layout.database, *layout.database_companions):
        if path.exists():
            raise RestoreError(f"{path} is still there; move it aside before restoring")
    os.replace(candidate, layout.database)
    fsync_dir(layout.database.parent)


def candidate_path(layout: DataLayout, backup_id: str) -> Path:
    layout.database.parent.mkdir(parents=True, exist_ok=True)
    return layout.database.parent / f"{RESTORE_PREFIX}{backup_id}.db"


def discard(candidate: Path) -> None:
    for path in (candidate, Path(f"{candidate}-wal"), Path(f"{candidate}-shm")):
        path.unlink(missing_ok=True)


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
    except (OSError, sqlite3.DatabaseError, ValueError, zstandard.ZstdError) as error:
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


def fetch_offsite(
    layout: DataLayout, store: OffsiteSource, entry_id: str | None
) -> tuple[Path, Manifest]:
    """An offsite backup (None: the store's newest) fetched beside the live database, proven and
    switched to WAL. ``fetch`` proves the bytes (see ``OffsiteStore.fetch``); the schema is
    proven here. Raises RestoreError or the store's error; nothing is left behind on failure."""
    temporary = candidate_path(layout, "offsite")
    try:
        manifest = store.fetch(entry_id, temporary)
        check_schema(temporary, manifest.id)
        set_wal(temporary)
    except (OSError, sqlite3.DatabaseError) as error:
        discard(temporary)
        raise RestoreError(f"offsite backup {entry_id or 'latest'}: {error}") from None
    except BaseException:
        discard(temporary)
        raise
    return temporary, manifest


# -- walking every candidate ---------------------------------------------------------------


def local_candidates(layout: DataLayout, now: float) -> list[Backup]:
    """Every committed local backup, in the order to try them."""
    return candidates_newest_first(Catalogue(layout).scan(), now)


def offsite_candidates(
    store: OffsiteSource, now: float
) -> tuple[list[OffsiteEntryLike], list[str]]:
    """The offsite entries to try, in order, and those the store refused before any fetch
    ("backup id: reason" — a forged MAC, an old unauthenticated format …). The one place that
    asks the store what it holds; the order below applies on top of the store's."""
    found = store.candidates(now)
    refused = [f"backup {package.id}: {package.reason}" for package in found.refused]
    return candidates_newest_first(list(found.entries), now), refused


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


def first_good_offsite(
    layout: DataLayout, store: OffsiteSource, now: float, rejected: list[str]
) -> tuple[Path, Manifest] | None:
    """The first offsite backup that proves itself, fetched and made ready beside the live
    database; each one refused on the way is appended to ``rejected`` with its id and reason."""
    try:
        entries, refused = offsite_candidates(store, now)
    except Exception as error:  # any failure of the offsite store: reported, then go on
        rejected.append(f"offsite: could not list the backups: {error}")
        log.error("offsite: could not list the backups: %s", error)
        return None
    rejected.extend(f"offsite {reason}" for reason in refused)
    for entry in entries:
        try:
            return fetch_offsite(layout, store, entry.id)
        except Exception as error:  # any failure of this one: named, then the next one
            text = str(error)
            named = text if entry.id in text else f"backup {entry.id}: {text}"
            rejected.append(named if named.startswith("offsite") else f"offsite {named}")
            log.error("%s", rejected[-1])
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
        merged = sum((self.salvage or {}).get("merged", {}).values()) if self.salvage else 0  # type: ignore[union-attr]
        tail = f"; {merged} rows salvaged from the damaged file" if self.salvage else ""
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
        return head + tail + brought + again + damaged + self.refusals() + where

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
            result.check_deferred = check_deferred(backup, trust_hash)
        elif moved is not None:
            moved = update_note(moved, restored_from=None, source=None)
    if result.restored_from is None and offsite is not None:
        fetched = first_good_offsite(layout, offsite, now, result.rejected)
        if fetched is not None and _install(layout, fetched[0], result):
            result.restored_from, result.source = fetched[1].id, "offsite"
            # A lost disk lost the journal too: the branch's copy of it, for replay.
            brought = restore_journal(layout.journal, offsite, fetched[1].created_at)
            result.journal = brought.as_dict() if brought is not None else None
    if result.restored_from is None and offsite is not None and not list_segments(layout.journal):
        # Nothing to restore and no journal here: the branch's journal rebuilds what it holds.
        brought = restore_journal(layout.journal, offsite, 0.0)
        result.journal = brought.as_dict() if brought is not None else None

    for entry in list_quarantine(layout):
        pending = entry.note.get("salvage", {}).get("status") == "pending"
        if pending and not entry.note.get("restored_from"):
            # This recovery's quarantine, or one an interrupted recovery left before installing.
            entry = update_note(entry, restored_from=result.restored_from, source=result.source)
        report = finish_salvage(layout, entry, fresh=result.fresh)
        if report is not None and moved is not None and entry.folder == moved.folder:
            result.salvage = report.as_dict()
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
    then = erase_again(gather(layout)[0]) if target is not None else None
    report = salvage_and_merge(entry.database, wal, entry.folder / "salvage.db", target, then=then)
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
    """At start-up: finish merges a killed watchdog left pending (idempotent by primary key),
    each erasing again in the merge's own transaction."""
    reports = []
    for entry in list_quarantine(layout):
        report = finish_salvage(layout, entry)
        if report is not None:
            reports.append(report)
    return reports
