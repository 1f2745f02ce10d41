"""The backup catalogue: what verified backups exist under ``DATA_DIR/backups/<tier>/``.

A backup is a data file (``<id>.db``, or ``<id>.db.zst`` for compressed tiers) and its manifest
(``<id>.json``). The manifest is written last, atomically: it is the commit point, so a backup
without one was interrupted and is not a backup. Files being made carry a ``.tmp-`` prefix.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from conf.layout import TIERS, DataLayout
from conf.units import is_moment
from watchdog.data.fs import FileLock, atomic_write, note_set_aside

log = logging.getLogger(__name__)

TMP_PREFIX = ".tmp-"
STAGED_PREFIX = ".unverified-"
"""A copy made but not yet proven (``rules.deploy``): no tier counts it."""
FAILED_PREFIX = ".failed-"
"""A staged copy that failed its proof: kept beside for a look, never counted."""
MANIFEST_FORMAT = 1


@dataclass(frozen=True)
class Manifest:
    id: str
    tier: str
    reason: str
    created_at: float
    size_bytes: int
    """Size of the database itself (uncompressed)."""
    sha256: str
    """Of the database itself (uncompressed)."""
    file: str
    file_size: int
    file_sha256: str
    compression: str | None
    rows: dict[str, int]
    sqlite_version: str
    app_version: str
    duration_s: float
    format: int = MANIFEST_FORMAT
    extra: dict[str, str] = field(default_factory=dict)
    checked_sha256: str | None = None
    """The sha256 of the exact bytes a full ``PRAGMA integrity_check`` passed on when the backup
    was made (the plain database: ``sha256`` when they are the same bytes). A restore whose copy
    hashes to it is proven by the hash (and the schema) instead of a second check; the full check
    of the installed file then runs with the bot back. Absent in older manifests: checked again."""

    @property
    def proven_by_hash(self) -> bool:
        """The full check passed on the very bytes ``sha256`` names."""
        return self.checked_sha256 is not None and self.checked_sha256 == self.sha256

    @property
    def created_iso(self) -> str:
        return datetime.fromtimestamp(self.created_at, UTC).isoformat(timespec="seconds")

    def to_json(self) -> str:
        return json.dumps(
            {**asdict(self), "created_iso": self.created_iso}, indent=2, sort_keys=True
        )

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        """The one loader of a manifest: ValueError for anything of the wrong shape."""
        return parse_manifest(json.loads(text))


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("not text")
    return value


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise TypeError("not a whole number ≥ 0")
    return value


def _seconds(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise TypeError("not a number")
    return float(value)


def _moment(value: Any) -> float:
    if not is_moment(value):
        raise TypeError("not a time (seconds since 1970 a date can show)")
    return float(value)


def _digest(value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[0-9a-f]{64}", value):
        raise TypeError("not a sha256")
    return value


def _optional_digest(value: Any) -> str | None:
    return None if value is None else _digest(value)


def _compression(value: Any) -> str | None:
    if value not in (None, "zstd"):
        raise TypeError("not none or zstd")
    return value  # type: ignore[no-any-return]


def _rows(value: Any) -> dict[str, int]:
    if not isinstance(value, dict):
        raise TypeError("not an object")
    return {_text(key): _count(count) for key, count in value.items()}


def _extra(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise TypeError("not an object")
    return {_text(key): _text(item) for key, item in value.items()}


_MANIFEST_FIELDS: dict[str, Callable[[Any], Any]] = {
    "id": _text,
    "tier": _text,
    "reason": _text,
    "created_at": _moment,
    "size_bytes": _count,
    "sha256": _digest,
    "file": _text,
    "file_size": _count,
    "file_sha256": _digest,
    "compression": _compression,
    "rows": _rows,
    "sqlite_version": _text,
    "app_version": _text,
    "duration_s": _seconds,
    "format": _count,
    "extra": _extra,
    "checked_sha256": _optional_digest,
}
_OPTIONAL = {"format", "extra", "checked_sha256"}


def parse_manifest(document: Any) -> Manifest:
    if not isinstance(document, dict):
        raise ValueError(f"not an object but {type(document).__name__}")
    values: dict[str, Any] = {}
    for name, check in _MANIFEST_FIELDS.items():
        if name not in document:
            if name in _OPTIONAL:
                continue
            raise ValueError(f"{name} is missing")
        try:
            values[name] = check(document[name])
        except TypeError as error:
            raise ValueError(f"{name}: {error}") from None
    if values["tier"] not in TIERS:
        raise ValueError(f"tier: {values['tier']!r} is not a tier")
    return Manifest(**values)


@dataclass(frozen=True)
class Staged:
    """A copy made (fsynced, hashed) and not yet proven: ``.unverified-<id>.db`` and this
    record, ``.unverified-<id>.json``, written last (the copy exists once it is)."""

    id: str
    tier: str
    reason: str
    created_at: float
    sha256: str
    size_bytes: int
    app_version: str
    copy_seconds: float

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)


_STAGED_FIELDS: dict[str, Callable[[Any], Any]] = {
    "id": _text,
    "tier": _text,
    "reason": _text,
    "created_at": _moment,
    "sha256": _digest,
    "size_bytes": _count,
    "app_version": _text,
    "copy_seconds": _seconds,
}


def parse_staged(document: Any) -> Staged:
    """The one loader of a staged copy's record: ValueError for anything of the wrong shape."""
    if not isinstance(document, dict) or set(document) != set(_STAGED_FIELDS):
        raise ValueError("not the fields of a staged copy's record")
    try:
        values = {name: check(document[name]) for name, check in _STAGED_FIELDS.items()}
    except TypeError as error:
        raise ValueError(str(error)) from None
    if values["tier"] not in TIERS or not re.fullmatch(r"[0-9A-Za-z-]+", values["id"]):
        raise ValueError("not a tier's copy")
    return Staged(**values)


@dataclass(frozen=True)
class Backup:
    manifest: Manifest
    data_path: Path
    manifest_path: Path

    @property
    def id(self) -> str:
        return self.manifest.id

    @property
    def tier(self) -> str:
        return self.manifest.tier

    @property
    def created_at(self) -> float:
        return self.manifest.created_at


def new_backup_id(tier: str, created_at: float, salt: str) -> str:
    stamp = datetime.fromtimestamp(created_at, UTC).strftime("%Y%m%dT%H%M%S")
    return f"{stamp}Z-{tier}-{salt}"


class Catalogue:
    def __init__(self, layout: DataLayout) -> None:
        self.layout = layout
        self.root = layout.backups

    def tier_dir(self, tier: str) -> Path:
        folder = self.layout.tier(tier)
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Excludes other writers of the catalogue (the watchdog and CLI commands) while held."""
        with FileLock(self.root / ".lock"):
            yield

    def scan(self) -> list[Backup]:
        """Every committed backup, oldest first. Unreadable manifests are reported and skipped."""
        found: list[Backup] = []
        for tier in TIERS:
            folder = self.layout.tier(tier)
            if not folder.is_dir():
                continue
            for manifest_path in folder.glob("*.json"):
                if manifest_path.name.startswith((TMP_PREFIX, STAGED_PREFIX, FAILED_PREFIX)):
                    continue
                try:
                    manifest = Manifest.from_json(manifest_path.read_text(encoding="utf-8"))
                except (OSError, ValueError) as error:
                    note_set_aside(manifest_path, "backup manifest", str(error))
                    continue
                expected = (f"{manifest.id}.db", f"{manifest.id}.db.zst", f"{manifest.id}.pgdump")
                if (
                    manifest.tier != tier
                    or manifest.file not in expected
                    or manifest_path.stem != manifest.id
                ):
                    note_set_aside(
                        manifest_path, "backup manifest", "does not describe its own files"
                    )
                    continue
                found.append(Backup(manifest, folder / manifest.file, manifest_path))
        found.sort(key=lambda backup: (backup.created_at, backup.id))
        return found

    def find(self, backup_id: str) -> Backup | None:
        return next((backup for backup in self.scan() if backup.id == backup_id), None)

    def newest_by_tier(self, backups: list[Backup] | None = None) -> dict[str, Backup | None]:
        newest: dict[str, Backup | None] = dict.fromkeys(TIERS)
        for backup in backups if backups is not None else self.scan():
            newest[backup.tier] = backup  # oldest first, so the last one wins
        return newest

    def temporary_path(self, tier: str, backup_id: str, suffix: str) -> Path:
        return self.tier_dir(tier) / f"{TMP_PREFIX}{backup_id}{suffix}"

    def commit(self, manifest: Manifest, data_tmp: Path) -> Backup:
        """Move a verified data file into place, then its manifest: the backup now exists."""
        folder = self.tier_dir(manifest.tier)
        data_path = folder / manifest.file
        manifest_path = folder / f"{manifest.id}.json"
        manifest_tmp = folder / f"{TMP_PREFIX}{manifest.id}.json"
        os.replace(data_tmp, data_path)
        atomic_write(manifest_path, manifest.to_json(), temporary=manifest_tmp)
        return Backup(manifest, data_path, manifest_path)

    def remove(self, backup: Backup) -> None:
        """Manifest first: a half-removed backup is then a leftover file, never a broken backup."""
        backup.manifest_path.unlink(missing_ok=True)
        backup.data_path.unlink(missing_ok=True)

    def cleanup_leftovers(self) -> list[Path]:
        """Delete what interrupted backups left: temporaries and data files with no manifest.

        None of these was ever a backup (the manifest is the commit point); the live database is
        not below backups/, so nothing here can be user data that exists nowhere else.
        """
        removed: list[Path] = []
        for tier in TIERS:
            folder = self.layout.tier(tier)
            if not folder.is_dir():
                continue
            # Any manifest, even one that no longer parses, keeps its data file: that may be a
            # verified backup with a damaged label, and it is not ours to delete.
            labelled = {
                path.stem for path in folder.glob("*.json") if not path.name.startswith(TMP_PREFIX)
            }  # a staged or set-aside copy's record keeps its data file too
            for path in folder.iterdir():
                stem = path.name.removesuffix(".zst").removesuffix(".db").removesuffix(".pgdump")
                orphan = path.suffix != ".json" and stem not in labelled
                if path.name.startswith(TMP_PREFIX) or orphan:
                    path.unlink(missing_ok=True)
                    removed.append(path)
        return removed

    # -- copies made, not yet proven (rules.deploy) -------------------------------------------

    def staged_paths(
        self, tier: str, backup_id: str, prefix: str = STAGED_PREFIX
    ) -> tuple[Path, Path]:
        folder = self.tier_dir(tier)
        return folder / f"{prefix}{backup_id}.db", folder / f"{prefix}{backup_id}.json"

    def stage(self, staged: Staged, data_tmp: Path) -> Path:
        """Keep a hashed copy for its proof later: data first, its record last."""
        data, record = self.staged_paths(staged.tier, staged.id)
        os.replace(data_tmp, data)
        atomic_write(record, staged.to_json(), temporary=record.with_name(TMP_PREFIX + record.name))
        return data

    def staged(self) -> list[Staged]:
        """Every staged copy awaiting its proof, oldest first; a record of the wrong shape is
        set aside (kept, reported). A record whose backup was committed is dropped."""
        found: list[Staged] = []
        for tier in TIERS:
            folder = self.layout.tier(tier)
            if not folder.is_dir():
                continue
            for record in folder.glob(f"{STAGED_PREFIX}*.json"):
                try:
                    staged = parse_staged(json.loads(record.read_text(encoding="utf-8")))
                except (OSError, ValueError) as error:
                    note_set_aside(record, "staged copy record", str(error))
                    continue
                if staged.tier != tier or record.name != f"{STAGED_PREFIX}{staged.id}.json":
                    note_set_aside(record, "staged copy record", "does not describe its own files")
                    continue
                if (folder / f"{staged.id}.json").exists():
                    record.unlink(missing_ok=True)  # proven and committed before a crash
                    continue
                found.append(staged)
        found.sort(key=lambda staged: (staged.created_at, staged.id))
        return found

    def set_aside_staged(self, staged: Staged, why: str) -> Path:
        """A copy that failed its proof: renamed ``.failed-<id>``, its record too, kept for a
        look (only the newest of its tier: an older failed copy is removed), never counted."""
        data, record = self.staged_paths(staged.tier, staged.id)
        failed_data, failed_record = self.staged_paths(staged.tier, staged.id, FAILED_PREFIX)
        for old in self.tier_dir(staged.tier).glob(f"{FAILED_PREFIX}*"):
            old.unlink(missing_ok=True)
        if data.exists():
            os.replace(data, failed_data)
        atomic_write(failed_record, json.dumps({**asdict(staged), "failed": why}, indent=2))
        record.unlink(missing_ok=True)
        note_set_aside(failed_data, f"{staged.tier} copy", why)
        return failed_data

    def unstage(self, staged: Staged) -> None:
        """The record of a copy now committed as a backup (its data file moved already)."""
        self.staged_paths(staged.tier, staged.id)[1].unlink(missing_ok=True)
