"""Candidates for the live database: which backups to try, and proving each one before it is
installed.

A backup is input from outside the program's trust boundary (DESIGN, "Trust boundary"): a local
backup's manifest and file can both be rewritten by anyone with write access to DATA_DIR, and an
offsite package is as good as the branch it came from. So every file that is to become the live
database — in a recovery, an operator's ``restore`` (local or ``--from-git``), a drill — is made
ready beside the live database and must prove, on that very copy: the sha256 its manifest gives
(and, offsite, whatever ``OffsiteStore.fetch`` proves: parts, decryption, size), the bot's own
schema and nothing more (:func:`schema_problem`), and ``integrity_check``. Which to try first is
``rules.recovery.candidates_newest_first``'s decision.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

import zstandard

from conf.layout import DataLayout
from conf.schema import expected_schema
from watchdog.data.catalogue import Backup, Catalogue, Manifest
from watchdog.data.database import connect, read_schema
from watchdog.data.fs import fsync_dir, fsync_file
from watchdog.data.snapshot import (
    Verdict,
    integrity_problem,
    materialize,
    sha256_of,
    verify_stored_file,
)
from watchdog.rules.recovery import candidates_newest_first, future_dated, schema_differences

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


def prepare_backup(layout: DataLayout, backup: Backup) -> Path:
    """The backup's database materialized beside the live one, proven (sha256, schema,
    integrity_check) and switched to WAL; the caller swaps it in (or discards it). Nothing live
    is touched. Raises RestoreError.

    For a plain backup, ``integrity_check`` runs on the stored file while it is being copied
    (SQLite releases the GIL; the machine has a second core), and the copy must then hash to the
    manifest's sha256: the same bytes that passed. That takes the copy off the time the bot is
    down. A compressed backup is checked after decompression, as it must be.
    """
    temporary = candidate_path(layout, backup.id)
    try:
        if backup.manifest.compression is not None:
            materialize(backup, temporary)
            same = sha256_of(temporary) == backup.manifest.sha256
            problem = integrity_problem(temporary) if same else None
        else:
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="restore-check") as pool:
                checking = pool.submit(integrity_problem, backup.data_path)
                materialize(backup, temporary)
                same = sha256_of(temporary) == backup.manifest.sha256
                problem = checking.result()
        if not same:
            raise RestoreError(f"backup {backup.id}: the copy does not match its sha256")
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
    layout: DataLayout, now: float, rejected: list[str]
) -> tuple[Path, Backup] | None:
    """The first local backup that proves itself, made ready beside the live database; each one
    refused on the way is appended to ``rejected`` with its id and the reason."""
    for backup in local_candidates(layout, now):
        if future_dated(backup.created_at, now):
            log.warning("backup %s is dated in the future: tried after every other", backup.id)
        try:
            verdict = verify_stored_file(backup)  # cheap and first: the file we made, untouched
        except OSError as error:
            verdict = Verdict(False, f"unreadable: {error.strerror or error}")
        try:
            if not verdict.ok:
                raise RestoreError(f"backup {backup.id}: {verdict.detail}")
            return prepare_backup(layout, backup), backup
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
