"""Offsite candidates for recovery and restore: what the store offers, in the order to try
them, each fetched beside the live database and proven (the store proves the bytes, here the
schema) before it may be installed."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from conf.layout import DataLayout
from watchdog.data.catalogue import Manifest
from watchdog.data.install import RestoreError, candidate_path, check_schema, discard, set_wal
from watchdog.rules.recovery import candidates_newest_first

log = logging.getLogger(__name__)


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


def offsite_candidates(
    store: OffsiteSource, now: float
) -> tuple[list[OffsiteEntryLike], list[str]]:
    """The offsite entries to try, in order, and those the store refused before any fetch
    ("backup id: reason" — a forged MAC, an old unauthenticated format …). The one place that
    asks the store what it holds; the order below applies on top of the store's."""
    found = store.candidates(now)
    refused = [f"backup {package.id}: {package.reason}" for package in found.refused]
    return candidates_newest_first(list(found.entries), now), refused


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
