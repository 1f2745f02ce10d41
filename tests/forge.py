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


def rewrite(backup: Backup, *statements: str, claim_checked: bool = True) -> Backup:
    """Run ``statements`` in the (plain) backup's file and rewrite its manifest to match; with
    ``claim_checked`` (the worst case) the manifest also claims a full integrity_check of the
    forged bytes, so a restore would prove it by its hash alone."""
    assert backup.manifest.compression is None, "plain backups only"
    with closing(sqlite3.connect(backup.data_path)) as connection:
        for statement in statements:
            connection.execute(statement)
        connection.commit()
    return relabel(backup, claim_checked)


def relabel(backup: Backup, claim_checked: bool = True) -> Backup:
    """A manifest rewritten to match the (plain) backup's file as it is now."""
    digest = sha256(backup.data_path)
    size = backup.data_path.stat().st_size
    manifest = dataclasses.replace(
        backup.manifest,
        sha256=digest,
        file_sha256=digest,
        size_bytes=size,
        file_size=size,
        checked_sha256=digest if claim_checked else None,
    )
    write_manifest(backup, manifest)
    return dataclasses.replace(backup, manifest=manifest)


def damage_pages(path: Path, table: str = "messages", seed: int = 1) -> list[int]:
    """Scribble over leaf pages of ``table`` and its indexes, leaving the schema readable: a file
    that fails ``integrity_check`` and passes the schema comparison. Returns the pages hit."""
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as connection:
        page_size = connection.execute("PRAGMA page_size").fetchone()[0]
        pages = [
            row[0]
            for row in connection.execute(
                "SELECT pageno FROM dbstat WHERE pagetype = 'leaf' AND name IN "
                "(SELECT name FROM sqlite_master WHERE tbl_name = ?) ORDER BY pageno",
                (table,),
            )
        ]
    assert pages, f"no pages of {table}"
    hit = pages[seed % len(pages) :][:3]
    with path.open("r+b") as handle:
        for number in hit:
            handle.seek((number - 1) * page_size + (100 if number == 1 else 0))
            handle.write(bytes((i * 37 + seed) % 251 for i in range(page_size // 2)))
    return hit


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
