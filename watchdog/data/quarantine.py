"""Quarantine: the damaged (or replaced) database moved aside whole, with a note; nothing in it
is ever deleted. A note is input like any other file in DATA_DIR: :func:`parse_note` checks it."""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from conf.layout import DataLayout
from watchdog.data.fs import atomic_write_json, fsync_dir, move_file, note_set_aside

log = logging.getLogger(__name__)

NOTE = "note.json"


@dataclass(frozen=True)
class Quarantined:
    folder: Path
    note: dict[str, Any]

    @property
    def database(self) -> Path | None:
        path = self.folder / str(self.note["database_name"])
        return path if _regular_file(path) else None


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
    strangers = [path for path in present if not _regular_file(path)]
    for path in strangers:
        log.error("%s is not a regular file: left where it is, never moved to quarantine", path)
    present = [path for path in present if path not in strangers]
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


def _regular_file(path: Path) -> bool:
    """Only the database and its -wal/-shm are ever moved: never a folder, a link or a device."""
    return path.is_file() and not path.is_symlink()


def parse_note(document: Any) -> dict[str, Any]:
    """A quarantine note as this module writes it; ValueError for anything else (the folder is
    in DATA_DIR, so its note is input like any other file there)."""
    if not isinstance(document, dict):
        raise ValueError(f"not an object but {type(document).__name__}")
    name = document.get("database_name")
    if not isinstance(name, str) or not name or name != Path(name).name or name in (".", ".."):
        raise ValueError("database_name is not a plain file name")
    if not isinstance(document.get("salvage", {}), dict):
        raise ValueError("salvage is not an object")
    for key in ("restored_from", "source", "reason", "detail"):
        if document.get(key) is not None and not isinstance(document[key], str):
            raise ValueError(f"{key} is not text")
    return document


def list_quarantine(layout: DataLayout) -> list[Quarantined]:
    """Every quarantine folder with a valid note. A bad note is renamed ``note.json.damaged``
    (the folder and its files stay) and reported; it is never trusted."""
    found: list[Quarantined] = []
    if not layout.quarantine.is_dir():
        return found
    for folder in sorted(layout.quarantine.iterdir()):
        note_path = folder / NOTE
        if not folder.is_dir() or folder.is_symlink() or not note_path.is_file():
            continue
        try:
            note = parse_note(json.loads(note_path.read_text(encoding="utf-8")))
        except (OSError, ValueError) as error:
            aside = note_path.with_name(NOTE + ".damaged")
            with contextlib.suppress(OSError):
                note_path.replace(aside)
            note_set_aside(aside, "quarantine note", str(error))
            continue
        found.append(Quarantined(folder, note))
    return found


def update_note(entry: Quarantined, **changes: Any) -> Quarantined:
    note = {**entry.note, **changes}
    write_note(entry.folder, note)
    return Quarantined(entry.folder, note)
