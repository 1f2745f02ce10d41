"""The byte streams packing and unpacking run through: parts written with a roll-over, parts
read back as one stream, and a writer that stops at a size it was told (a zstd bomb stops there)."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Part:
    name: str
    size: int
    sha256: str


class TooLarge(Exception):
    """Raised by :class:`BoundedWriter` the moment one more byte would pass its limit."""


class PartWriter(io.RawIOBase):
    """A write-only stream that rolls over to a new file every ``part_size`` bytes."""

    def __init__(self, folder: Path, part_size: int, suffix: str) -> None:
        super().__init__()
        self.folder = folder
        self.part_size = part_size
        self.suffix = suffix
        self.parts: list[Part] = []
        self.paths: list[Path] = []
        self._handle: io.BufferedWriter | None = None
        self._digest = hashlib.sha256()
        self._written = 0

    def writable(self) -> bool:
        return True

    def _open_next(self) -> None:
        path = self.folder / f"part-{len(self.paths):04d}{self.suffix}"
        self._handle = path.open("wb")
        self.paths.append(path)
        self._digest = hashlib.sha256()
        self._written = 0

    def _finish_current(self) -> None:
        if self._handle is None:
            return
        self._handle.close()
        self._handle = None
        path = self.paths[-1]
        self.parts.append(Part(path.name, self._written, self._digest.hexdigest()))

    def write(self, data: Any) -> int:  # type: ignore[override]
        view = memoryview(data).cast("B")
        total = len(view)
        while view:
            if self._handle is None or self._written >= self.part_size:
                self._finish_current()
                self._open_next()
            assert self._handle is not None
            room = self.part_size - self._written
            piece = view[:room]
            self._handle.write(piece)
            self._digest.update(piece)
            self._written += len(piece)
            view = view[room:]
        return total

    def close(self) -> None:
        if not self.closed:
            if self._handle is None and not self.paths:
                self._open_next()  # an empty stream still makes one (empty) part
            self._finish_current()
        super().close()


class JoinedReader(io.RawIOBase):
    """The parts read back as one stream."""

    def __init__(self, paths: Sequence[Path]) -> None:
        super().__init__()
        self._paths = list(paths)
        self._handle: io.BufferedReader | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:  # type: ignore[override]
        while True:
            if self._handle is None:
                if not self._paths:
                    return 0
                self._handle = self._paths.pop(0).open("rb")
            count = self._handle.readinto(buffer)
            if count:
                return count
            self._handle.close()
            self._handle = None

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        super().close()


class BoundedWriter(io.RawIOBase):
    """Passes writes on to ``target`` until ``limit`` bytes; the write that would pass it
    raises :class:`TooLarge` before any of its bytes reach the disk."""

    def __init__(self, target: Any, limit: int) -> None:
        super().__init__()
        self._target = target
        self.limit = limit
        self.written = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:  # type: ignore[override]
        size = len(memoryview(data).cast("B"))
        if self.written + size > self.limit:
            raise TooLarge(f"more than {self.limit} bytes")
        self._target.write(data)
        self.written += size
        return size
