"""Moving a damaged database aside, whole, with a note saying why. Nothing is ever deleted here.

``DATA_DIR/quarantine/<time>/`` holds the database with its ``-wal`` and ``-shm`` (a ``-wal`` left
next to a restored file would corrupt it), ``note.json``, and later ``salvage.db``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from conf.layout import DataLayout
from watchdog.data.fs import atomic_write_json, fsync_dir, move_file

NOTE = "note.json"


@dataclass(frozen=True)
class Quarantined:
    folder: Path
    note: dict[str, Any]

    @property
    def database(self) -> Path | None:
        name = self.note.get("database_name")
        path = self.folder / name if name else None
        return path if path is not None and path.exists() else None


def write_note(folder: Path, note: dict[str, Any]) -> None:
    atomic_write_json(folder / NOTE, note)


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return None


def quarantine_database(
    layout: DataLayout, reason: str, detail: str, now: float
) -> Quarantined | None:
    """Move the database and its companions into a new quarantine folder; None if there is nothing."""
    present = [path for path in (layout.database, *layout.database_companions) if path.exists()]
    if not present:
        return None
    stamp = datetime.fromtimestamp(now, UTC).strftime("%Y%m%dT%H%M%SZ")
    folder = layout.quarantine / stamp
    suffix = 1
    while folder.exists():
        suffix += 1
        folder = layout.quarantine / f"{stamp}-{suffix}"
    folder.mkdir(parents=True)
    note: dict[str, Any] = {
        "reason": reason,
        "detail": detail,
        "quarantined_at": datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds"),
        "database_name": layout.database.name,
        "files": {path.name: _size(path) for path in present},
        "restored_from": None,
        "salvage": {"status": "pending"},
    }
    write_note(folder, note)
    for path in present:
        try:
            move_file(path, folder / path.name)  # copied when DATABASE_PATH is elsewhere
        except FileNotFoundError:
            # A -wal or -shm removed by SQLite as its last connection closed: its content is
            # in the main file by then.
            if path == layout.database:
                raise
    fsync_dir(folder)
    fsync_dir(layout.database.parent)
    return Quarantined(folder, note)


def list_quarantine(layout: DataLayout) -> list[Quarantined]:
    found = []
    if not layout.quarantine.is_dir():
        return found
    for folder in sorted(layout.quarantine.iterdir()):
        note_path = folder / NOTE
        try:
            note = json.loads(note_path.read_text())
        except (OSError, ValueError):
            continue
        found.append(Quarantined(folder, note))
    return found


def update_note(entry: Quarantined, **changes: Any) -> Quarantined:
    note = {**entry.note, **changes}
    write_note(entry.folder, note)
    return Quarantined(entry.folder, note)
