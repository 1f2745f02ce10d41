"""What an attacker holding only the git token can make: a hostile database (the bot's schema
plus a planted trigger) packed as an offsite package encrypted to the operator's public key
(it is in every package: anyone may encrypt to it) and MAC'd under a key of the attacker's
choosing. Used by the offsite authentication tests and the chaos campaign's forgery fault."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

from pyrage import x25519

from tests import dbgen
from watchdog.data.snapshot import sha256_of
from watchdog.offsite import package as package_module
from watchdog.offsite.auth import MacKey, seal
from watchdog.offsite.package import pack


def hostile_database(path: Path) -> Path:
    """The bot's real schema with rows, plus one trigger of the attacker's."""
    dbgen.create(path, 100_000)
    with closing(sqlite3.connect(path)) as connection:
        connection.execute("CREATE TRIGGER planted AFTER INSERT ON users BEGIN SELECT 1; END")
        connection.commit()
    return path


def package_files(
    source: Path,
    manifest: dict[str, Any],
    recipient: x25519.Recipient,
    mac: MacKey,
    folder: Path,
    backup_id: str,
    created_at: float,
) -> tuple[dict[str, bytes], bytes]:
    """The files of a package of ``source`` (parts made in ``folder``) whose manifest is
    ``manifest`` with the hostile file's own facts; and the sealed manifest."""
    parts, paths = pack(source, compressed=False, recipient=recipient, folder=folder)
    manifest = dict(manifest)
    manifest.update(
        id=backup_id,
        created_at=created_at,
        sha256=sha256_of(source),
        size_bytes=source.stat().st_size,
    )
    sealed = package_module.encrypt_bytes(json.dumps(manifest).encode(), recipient)
    document = {
        "format": 2,
        "kind": "erixcast-offsite-package",
        "id": backup_id,
        "encrypted": True,
        "recipient": str(recipient),
        "compression": "zstd",
        "stored_size": sum(p.size for p in parts),
        "parts": [vars(p) for p in parts],
        "manifest": {
            "name": "manifest.age",
            "size": len(sealed),
            "sha256": hashlib.sha256(sealed).hexdigest(),
        },
    }
    files = {p.name: path.read_bytes() for p, path in zip(parts, paths, strict=True)}
    files["manifest.age"] = sealed
    files["package.json"] = json.dumps(seal(document, mac)).encode()
    return files, sealed
