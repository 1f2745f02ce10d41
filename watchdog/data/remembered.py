"""What the watchdog must remember across restarts: ``DATA_DIR/run``'s sibling
``watchdog-state.json``, one typed record and one loader.

The file is input like any other in DATA_DIR: a field of the wrong type is dropped (and a copy of
the file kept as ``….damaged``), a file that is not JSON is set aside whole; neither stops the
watchdog. The watchdog is the file's only writer, so the record is read once and kept.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conf.units import is_moment
from watchdog.data.fs import atomic_write_json, note_set_aside

log = logging.getLogger(__name__)


@dataclass
class Remembered:
    app_version: str | None = None
    """The version that last ran on this data (a change means a deploy)."""
    database_seen: bool = False
    """A database existed here once: from then on a missing one is a loss, not a first run."""
    known_tables: list[str] = field(default_factory=list)
    """Tables seen in the live database; one vanishing means the file is not ours."""
    fresh_start_at: float | None = None
    fresh_start_reason: str | None = None
    offsite_id: str | None = None
    offsite_created_at: float | None = None
    drill_at: float | None = None

    def to_document(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "app_version": self.app_version,
            "database_seen": self.database_seen,
            "known_tables": sorted(self.known_tables),
            "fresh_start_at": self.fresh_start_at,
            "fresh_start_reason": self.fresh_start_reason,
            "drill_at": self.drill_at,
        }
        if self.offsite_id is not None:
            document["offsite"] = {"id": self.offsite_id, "created_at": self.offsite_created_at}
        return {key: value for key, value in document.items() if value is not None}


def _number(value: Any) -> float | None:
    """A time (every number in this file is one)."""
    if not is_moment(value):
        raise TypeError("not a time (seconds since 1970 a date can show)")
    return float(value)


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("not text")
    return value


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError("not true or false")
    return value


def _names(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise TypeError("not a list of names")
    return list(value)


_FIELDS = {
    "app_version": ("app_version", _text),
    "database_seen": ("database_seen", _flag),
    "known_tables": ("known_tables", _names),
    "fresh_start_at": ("fresh_start_at", _number),
    "fresh_start_reason": ("fresh_start_reason", _text),
    "drill_at": ("drill_at", _number),
}


def parse(document: Any) -> tuple[Remembered, list[str]]:
    """The record a document holds, and what was wrong with it (each bad field dropped)."""
    remembered = Remembered()
    problems: list[str] = []
    if not isinstance(document, dict):
        return remembered, [f"not an object but {type(document).__name__}"]
    for key, value in document.items():
        if value is None:
            continue
        if key == "offsite":
            try:
                if not isinstance(value, dict):
                    raise TypeError("not an object")
                remembered.offsite_id = _text(value.get("id"))
                remembered.offsite_created_at = _number(value.get("created_at"))
            except TypeError as error:
                remembered.offsite_id = remembered.offsite_created_at = None
                problems.append(f"offsite: {error}")
            continue
        if key not in _FIELDS:
            continue  # written by a newer version: kept out of the way, not an error
        name, check = _FIELDS[key]
        try:
            setattr(remembered, name, check(value))
        except TypeError as error:
            problems.append(f"{key}: {error}")
    return remembered, problems


class RememberedStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._record: Remembered | None = None
        self._writing = threading.Lock()

    def load(self) -> Remembered:
        if self._record is None:
            self._record = self._read()
        return dataclasses.replace(self._record, known_tables=list(self._record.known_tables))

    def update(self, **changes: Any) -> Remembered:
        """Change the record; kept in memory even when the disk refuses it (full), and
        written whole again by the next update."""
        self._record = dataclasses.replace(self.load(), **changes)
        self._write()
        return self.load()

    async def update_async(self, **changes: Any) -> Remembered:
        """:meth:`update` for the event loop: the record changes at once (a ``load`` right
        after sees it), its durable write runs in a worker thread. An fsync waits for the
        filesystem's journal, which waits for whatever else is being written back: during a
        1 GB backup that is tens to hundreds of milliseconds no request would be answered."""
        self._record = dataclasses.replace(self.load(), **changes)
        await asyncio.to_thread(self._write)
        return self.load()

    def _write(self) -> None:
        """The record as it is now, written whole; one write at a time, so the last one to
        finish holds the newest record."""
        with self._writing:
            record = self._record
            if record is None:
                return
            try:
                atomic_write_json(self.path, record.to_document())
            except OSError as error:
                log.error("cannot write %s (%s): kept in memory until it can", self.path, error)

    def _read(self) -> Remembered:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return Remembered()
        except (OSError, UnicodeDecodeError) as error:
            self._set_aside(f"unreadable ({error})", move=True)
            return Remembered()
        try:
            document = json.loads(text)
        except ValueError as error:
            self._set_aside(f"not JSON ({error})", move=True)
            return Remembered()
        record, problems = parse(document)
        if problems:
            self._set_aside("; ".join(problems), move=False)
        return record

    def _set_aside(self, why: str, move: bool) -> None:
        aside = self.path.with_name(self.path.name + ".damaged")
        try:
            if move:
                self.path.replace(aside)
            else:
                shutil.copyfile(self.path, aside)
        except OSError as error:
            why = f"{why}; could not keep a copy: {error}"
        note_set_aside(aside, "state file", why)
