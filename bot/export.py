"""/export: everything the bot keeps about a user as one JSON document, gzip-compressed, streamed
from the database a page at a time into files under ``DataLayout.exports`` and cut into parts
Telegram accepts. Memory stays flat whatever the history's size: one page of rows and
zlib's window at a time.

The document is the one ``erixcast-export/1`` always was (``user``, ``user_data``,
``private_chat_data``, ``notes``, ``messages``); only its order on the page and the gzip are new.
Parts are plain byte slices of the one ``.json.gz`` file: joined in order (``cat``) they are it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import os
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from bot.storage import DatabaseThread, Storage

FORMAT = "erixcast-export/1"
UPLOAD_LIMIT = 50 * 1000 * 1000
"""Telegram's limit on a file a bot uploads (50 MB)."""
PART_BYTES = UPLOAD_LIMIT - 2 * 1000 * 1000
"""Each part's size, with room for the upload's own envelope."""
MAX_PARTS = 10
"""An export that needs more parts than this is refused (far beyond any quota)."""
PAGE_ROWS = 1000
"""Rows per database call: other updates' work runs between two pages."""
COMPRESS_LEVEL = 6
FILE_PREFIX = "erixcast-export-"


class ExportTooLarge(Exception):
    """The compressed export would need more than ``max_parts`` parts."""


@dataclass
class ExportFiles:
    """What an export produced; :meth:`remove` when sent (or not)."""

    parts: list[Path] = field(default_factory=list)
    messages: int = 0
    notes: int = 0

    @property
    def size(self) -> int:
        return sum(part.stat().st_size for part in self.parts)

    def remove(self) -> None:
        for part in self.parts:
            with contextlib.suppress(FileNotFoundError):
                part.unlink()


class PartFiles:
    """A write-only file that is really several, each at most ``part_bytes`` long, created
    owner-only next to each other: ``<stem>.part1``, ``<stem>.part2`` …"""

    def __init__(self, folder: Path, stem: str, part_bytes: int, max_parts: int) -> None:
        if part_bytes < 1 or max_parts < 1:
            raise ValueError("parts need a positive size and count")
        self.folder, self.stem = folder, stem
        self.part_bytes, self.max_parts = part_bytes, max_parts
        self.paths: list[Path] = []
        self._fd: int | None = None
        self._left = 0

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        while view:
            if self._left == 0:
                self._next_part()
            assert self._fd is not None
            written = os.write(self._fd, view[: self._left])
            self._left -= written
            view = view[written:]
        return len(data)

    def flush(self) -> None:
        return None

    def close(self) -> None:
        if self._fd is not None:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None

    def _next_part(self) -> None:
        self.close()
        if len(self.paths) >= self.max_parts:
            raise ExportTooLarge(f"more than {self.max_parts} parts of {self.part_bytes} bytes")
        path = self.folder / f"{self.stem}.part{len(self.paths) + 1}"
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self.paths.append(path)
        self._left = self.part_bytes


class ExportWriter:
    """The JSON document, written as it comes: the head, then each list's items."""

    def __init__(self, folder: Path, stem: str, part_bytes: int, max_parts: int) -> None:
        self.files = PartFiles(folder, stem, part_bytes, max_parts)
        self._gzip = gzip.GzipFile(
            filename="", mode="wb", fileobj=self.files, compresslevel=COMPRESS_LEVEL, mtime=0
        )
        self._in_list = False
        self._first_item = True

    def head(self, fields: Mapping[str, Any]) -> None:
        body = ",\n".join(f"  {_json(key)}: {_json(value)}" for key, value in fields.items())
        self._write("{\n" + body)

    def open_list(self, key: str) -> None:
        self._write(f",\n  {_json(key)}: [")
        self._in_list, self._first_item = True, True

    def items(self, values: Iterable[Mapping[str, Any]]) -> None:
        assert self._in_list
        text = ",\n    ".join(_json(value) for value in values)
        if text:
            self._write(("\n    " if self._first_item else ",\n    ") + text)
            self._first_item = False

    def close_list(self) -> None:
        self._write("]" if self._first_item else "\n  ]")
        self._in_list = False

    def finish(self) -> list[Path]:
        self._write("\n}\n")
        self._gzip.close()
        self.files.close()
        return self.files.paths

    def discard(self) -> None:
        with contextlib.suppress(Exception):
            self._gzip.close()
        with contextlib.suppress(Exception):
            self.files.close()
        for path in self.files.paths:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def _write(self, text: str) -> None:
        self._gzip.write(text.encode("utf-8", "surrogatepass"))


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


async def write_export(
    storage: Storage,
    db: DatabaseThread,
    user_id: int,
    folder: Path,
    now: datetime,
    *,
    page_rows: int = PAGE_ROWS,
    part_bytes: int = PART_BYTES,
    max_parts: int = MAX_PARTS,
) -> ExportFiles:
    """Write the user's export into ``folder``; raises :class:`ExportTooLarge` (nothing left
    behind) when it needs more than ``max_parts`` parts. Compression runs off the event loop
    and the database thread."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    stem = f"{FILE_PREFIX}{int(user_id)}-{secrets.token_hex(4)}.json.gz"
    writer = ExportWriter(folder, stem, part_bytes, max_parts)
    result = ExportFiles()
    try:
        head = await db.run(storage.export_header, user_id)
        document = {"format": FORMAT, "exported_at": now.isoformat(timespec="seconds"), **head}
        await asyncio.to_thread(writer.head, document)
        await asyncio.to_thread(writer.open_list, "notes")
        after = 0
        while rows := await db.run(storage.notes_after, user_id, after, page_rows):
            after = int(rows[-1]["id"])
            notes = [
                {"number": result.notes + n, "text": row["text"], "created_at": row["created_at"]}
                for n, row in enumerate(rows, start=1)
            ]
            result.notes += len(rows)
            await asyncio.to_thread(writer.items, notes)
        await asyncio.to_thread(writer.close_list)
        await asyncio.to_thread(writer.open_list, "messages")
        after = 0
        while rows := await db.run(storage.messages_page, user_id, after, page_rows):
            after = int(rows[-1]["id"])
            result.messages += len(rows)
            for row in rows:
                del row["id"]
            await asyncio.to_thread(writer.items, rows)
        await asyncio.to_thread(writer.close_list)
        result.parts = await asyncio.to_thread(writer.finish)
    except BaseException:
        await asyncio.to_thread(writer.discard)
        raise
    return result


def clean_exports(folder: Path) -> int:
    """Remove what an interrupted export left (at the bot's start); how many files."""
    removed = 0
    with contextlib.suppress(FileNotFoundError):
        for path in folder.iterdir():
            if path.name.startswith(FILE_PREFIX) and path.is_file():
                path.unlink()
                removed += 1
    return removed
