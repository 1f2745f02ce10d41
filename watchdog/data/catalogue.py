"""The backup catalogue: what verified backups exist under ``DATA_DIR/backups/<tier>/``.

A backup is a data file (``<id>.db``, or ``<id>.db.zst`` for compressed tiers) and its manifest
(``<id>.json``). The manifest is written last, atomically: it is the commit point, so a backup
without one was interrupted and is not a backup. Files being made carry a ``.tmp-`` prefix.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from conf.layout import TIERS, DataLayout
from watchdog.data.fs import FileLock, atomic_write

log = logging.getLogger(__name__)

TMP_PREFIX = ".tmp-"
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

    @property
    def created_iso(self) -> str:
        return datetime.fromtimestamp(self.created_at, UTC).isoformat(timespec="seconds")

    def to_json(self) -> str:
        return json.dumps(
            {**asdict(self), "created_iso": self.created_iso}, indent=2, sort_keys=True
        )

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        data = json.loads(text)
        data.pop("created_iso", None)
        known = {name for name in cls.__dataclass_fields__}
        return cls(**{key: value for key, value in data.items() if key in known})


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
                if manifest_path.name.startswith(TMP_PREFIX):
                    continue
                try:
                    manifest = Manifest.from_json(manifest_path.read_text())
                except (OSError, ValueError, TypeError) as error:
                    log.error("unreadable backup manifest %s: %s", manifest_path, error)
                    continue
                expected = (f"{manifest.id}.db", f"{manifest.id}.db.zst")
                if (
                    manifest.tier != tier
                    or manifest.file not in expected
                    or manifest_path.stem != manifest.id
                ):
                    log.error(
                        "backup manifest %s does not describe its own files: ignored", manifest_path
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
            }
            for path in folder.iterdir():
                stem = path.name.removesuffix(".zst").removesuffix(".db")
                orphan = path.suffix != ".json" and stem not in labelled
                if path.name.startswith(TMP_PREFIX) or orphan:
                    path.unlink(missing_ok=True)
                    removed.append(path)
        return removed
