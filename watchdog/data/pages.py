"""The SQLite file format, read directly: the header, the -wal, pages, varints, records
(:mod:`watchdog.data.btree` reads the b-trees and the free-list).

Salvage reads a damaged file through SQLite first; this module is for what SQLite cannot reach
(a schema page it cannot parse, a table whose root page is gone). It follows the file-format
document (https://www.sqlite.org/fileformat2.html) and trusts nothing it reads: every offset,
count and page number is checked before it is used, and what does not parse is reported as
such (``None``), never guessed at. It never writes.

A :class:`PageImage` is the database as SQLite would see it: the main file with the committed
frames of its ``-wal`` laid over it. That matters for erasure: after a ``DELETE`` that is not yet
checkpointed, the main file still holds the old pages with the deleted rows; the ``-wal`` holds
the pages as they are now (the rows gone, emptied pages on the free-list).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

MAGIC = b"SQLite format 3\x00"
ENCODINGS = {1: "utf-8", 2: "utf-16-le", 3: "utf-16-be"}
WAL_MAGIC = {0x377F0682: "<", 0x377F0683: ">"}  # the byte order of the frames' checksums
LOCK_BYTE = 1 << 30  # the page holding this offset is never used
U32 = struct.Struct(">I")


def page_size_of(raw: int) -> int | None:
    """The page size a header field stores (1 means 65536), or None if it is not one."""
    size = 65536 if raw == 1 else raw
    return size if 512 <= size <= 65536 and size & (size - 1) == 0 else None


@dataclass(frozen=True)
class Header:
    """The first 100 bytes of page 1. ``intact``: the magic string is there and the page size is
    one SQLite can write; without that no other field is believed."""

    intact: bool
    page_size: int | None = None
    reserved: int = 0
    size_pages: int | None = None  # the in-header database size, when it is valid
    freelist_trunk: int = 0
    freelist_count: int = 0
    encoding: int = 1


def parse_header(data: bytes) -> Header:
    if len(data) < 100:
        return Header(False)
    size = page_size_of(int.from_bytes(data[16:18], "big"))
    if not data.startswith(MAGIC) or size is None:
        return Header(False, page_size=size)
    counter, pages, valid_for = (U32.unpack_from(data, at)[0] for at in (24, 28, 92))
    return Header(
        True,
        page_size=size,
        reserved=data[20],
        size_pages=pages if pages and counter == valid_for else None,
        freelist_trunk=U32.unpack_from(data, 32)[0],
        freelist_count=U32.unpack_from(data, 36)[0],
        encoding=U32.unpack_from(data, 56)[0],
    )


@dataclass(frozen=True)
class WalIndex:
    page_size: int
    frames: dict[int, int]  # page number -> file offset of its newest committed image
    size_pages: int  # the database's size in pages after the last commit


def _checksum(data: bytes, order: str, s0: int, s1: int) -> tuple[int, int]:
    words = struct.unpack(f"{order}{len(data) // 4}I", data)
    for i in range(0, len(words), 2):
        s0 = (s0 + words[i] + s1) & 0xFFFFFFFF
        s1 = (s1 + words[i + 1] + s0) & 0xFFFFFFFF
    return s0, s1


def read_wal(path: Path) -> WalIndex | None:
    """The frames of a ``-wal`` that SQLite would replay: salts equal to the header's, running
    checksums right, up to the last commit frame. None if there is no valid header or no commit."""
    try:
        handle = path.open("rb")
    except OSError:
        return None
    with handle:
        header = handle.read(32)
        if len(header) < 32:
            return None
        magic, _, raw_size, _, salt1, salt2, c0, c1 = struct.unpack(">8I", header)
        order, size = WAL_MAGIC.get(magic), page_size_of(raw_size)
        if order is None or size is None or _checksum(header[:24], order, 0, 0) != (c0, c1):
            return None
        s0, s1 = c0, c1
        committed: dict[int, int] = {}
        pending: dict[int, int] = {}
        database_size = 0
        offset = 32
        while len(frame := handle.read(24 + size)) == 24 + size:
            number, commit, f1, f2, k0, k1 = struct.unpack_from(">6I", frame)
            if (f1, f2) != (salt1, salt2) or number == 0:
                break
            s0, s1 = _checksum(frame[:8] + frame[24:], order, s0, s1)
            if (s0, s1) != (k0, k1):
                break
            pending[number] = offset + 24
            if commit:
                committed.update(pending)
                pending.clear()
                database_size = commit
            offset += 24 + size
    if not database_size:
        return None
    return WalIndex(size, committed, database_size)


class PageImage:
    """Pages of a database file by number (1-based), the ``-wal``'s committed frames applied.

    The page size comes from the header; when the header is damaged, from the ``-wal``, then from
    ``page_size_hint`` (the restored backup's: a backup is a page-for-page copy). Pages are read
    one at a time: memory stays small whatever the file's size.
    """

    def __init__(self, path: Path, wal: Path | None = None, page_size_hint: int | None = None):
        self._main = path.open("rb")
        self._wal = None
        first = self._main.read(100)
        header = parse_header(first)
        index = read_wal(wal) if wal is not None else None
        if index is not None and header.intact and header.page_size != index.page_size:
            index = None  # a -wal of another page size is not this file's
        self.page_size = (
            (header.page_size if header.intact else None)
            or (index.page_size if index is not None else None)
            or page_size_hint
            or header.page_size
            or 4096
        )
        self._frames = index.frames if index is not None else {}
        if index is not None and wal is not None:
            self._wal = wal.open("rb")
        self.with_wal = index is not None
        file_pages = os.fstat(self._main.fileno()).st_size // self.page_size
        page_one = self.page(1) if file_pages or self._frames else None
        self.header = parse_header(page_one or b"")
        if index is not None:
            self.page_count = index.size_pages
        elif self.header.intact and self.header.size_pages:
            self.page_count = min(self.header.size_pages, max(file_pages, 1))
        else:
            self.page_count = file_pages
        self.usable = self.page_size - (self.header.reserved if self.header.intact else 0)
        self.encoding = ENCODINGS.get(self.header.encoding, "utf-8")

    def page(self, number: int) -> bytes | None:
        """The page's bytes, or None if there is no such page (or it is short)."""
        if number < 1 or (number - 1) * self.page_size <= LOCK_BYTE < number * self.page_size:
            return None
        at = self._frames.get(number)
        if at is not None and self._wal is not None:
            data = os.pread(self._wal.fileno(), self.page_size, at)
        else:
            data = os.pread(self._main.fileno(), self.page_size, (number - 1) * self.page_size)
        return data if len(data) == self.page_size else None

    def close(self) -> None:
        self._main.close()
        if self._wal is not None:
            self._wal.close()

    def __enter__(self) -> PageImage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def varint(data: bytes, at: int) -> tuple[int, int]:
    """A SQLite varint at ``at``: (value, offset after it). IndexError past the end."""
    value = 0
    for i in range(8):
        byte = data[at + i]
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            return value, at + i + 1
    return (value << 8) | data[at + 8], at + 9


def signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


_INT_SIZES = {1: 1, 2: 2, 3: 3, 4: 4, 5: 6, 6: 8}


def decode_record(payload: bytes, encoding: str = "utf-8") -> tuple[object, ...] | None:
    """The values of a record, or None when it does not parse exactly: a header of serial types
    whose sizes add up to the body, no reserved type, text that decodes. (The hot loop of a
    page scan: one-byte varints, the usual case, are read inline.)"""
    try:
        size, at = payload[0], 1
        if size >= 0x80:
            size, at = varint(payload, 0)
        if size < 1 or size > len(payload):
            return None
        types = []
        while at < size:
            kind = payload[at]
            if kind < 0x80:
                at += 1
            else:
                kind, at = varint(payload, at)
            types.append(kind)
        if at != size:
            return None
        values: list[object] = []
        append = values.append
        for kind in types:
            if kind >= 12:
                end = at + ((kind - 12) >> 1)
                append(payload[at:end].decode(encoding) if kind & 1 else payload[at:end])
                at = end
            elif kind == 0:
                append(None)
            elif kind <= 6:
                end = at + _INT_SIZES[kind]
                append(int.from_bytes(payload[at:end], "big", signed=True))
                at = end
            elif kind == 7:
                append(struct.unpack_from(">d", payload, at)[0])
                at += 8
            elif kind <= 9:
                append(kind - 8)
            else:
                return None
        # A value cut short by the payload's end leaves ``at`` past it: not a record.
        return tuple(values) if at == len(payload) else None
    except (IndexError, struct.error, UnicodeDecodeError):
        return None
