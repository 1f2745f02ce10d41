"""What an attacker with write access to DATA_DIR can do to a local backup: rewrite its file and
its manifest together, so that the manifest's sha256 is right for the forged file."""

from __future__ import annotations

import dataclasses
import hashlib
import sqlite3
from contextlib import closing
from pathlib import Path

from watchdog.data.catalogue import Backup, Manifest, new_backup_id

PLANTED_TRIGGER = (
    "CREATE TRIGGER messages_copy AFTER INSERT ON messages BEGIN "
    "INSERT INTO notes (user_id, text, created_at) VALUES (new.user_id, new.text, 'x'); END"
)
PLANTED_VIEW = "CREATE VIEW everyone AS SELECT id, username FROM users"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_manifest(backup: Backup, manifest: Manifest) -> None:
    backup.manifest_path.write_text(manifest.to_json())


def rewrite(backup: Backup, *statements: str) -> Backup:
    """Run ``statements`` in the (plain) backup's file and rewrite its manifest to match."""
    assert backup.manifest.compression is None, "plain backups only"
    with closing(sqlite3.connect(backup.data_path)) as connection:
        for statement in statements:
            connection.execute(statement)
        connection.commit()
    digest = sha256(backup.data_path)
    size = backup.data_path.stat().st_size
    manifest = dataclasses.replace(
        backup.manifest, sha256=digest, file_sha256=digest, size_bytes=size, file_size=size
    )
    write_manifest(backup, manifest)
    return dataclasses.replace(backup, manifest=manifest)


def copy_dated(backup: Backup, created_at: float, salt: str = "future") -> Path:
    """A genuine copy of a plain backup under a new id stamped ``created_at`` (same tier)."""
    new_id = new_backup_id(backup.tier, created_at, salt)
    folder = backup.data_path.parent
    data = folder / f"{new_id}.db"
    data.write_bytes(backup.data_path.read_bytes())
    manifest = dataclasses.replace(
        backup.manifest, id=new_id, created_at=created_at, file=data.name
    )
    (folder / f"{new_id}.json").write_text(manifest.to_json())
    return data
