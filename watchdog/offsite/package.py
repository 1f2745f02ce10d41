"""Packing a backup for the offsite branch and unpacking it again, streaming all the way.

pack:   database (or its .zst) → zstandard (unless already compressed) → age → parts on disk
unpack: parts → joined → age → zstandard → the plain database

Memory stays flat whatever the size: every stage reads and writes in chunks (pyrage's
``encrypt_io``/``decrypt_io`` stream). Each part is below ``MAX_PART_SIZE`` (GitHub warns over
50 MB and refuses over 100 MB per file) and carries its own sha256, so a damaged part is named.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyrage
import zstandard
from pyrage import x25519

from watchdog.data.snapshot import CHUNK
from watchdog.offsite.errors import OffsiteError

MAX_PART_SIZE = 45_000_000
"""Parts are strictly smaller than this."""
PART_SIZE = 40 * 1024 * 1024
MIN_PART_SIZE = 1024
ZSTD_LEVEL = 3
PACKAGE_FORMAT = 1


def parse_identity(text: str) -> x25519.Identity:
    """An age X25519 identity from ``AGE-SECRET-KEY-1…`` (an ``age-keygen`` file's text works too)."""
    candidates = [line.strip() for line in text.splitlines() if line.strip()]
    keys = [line for line in candidates if line.upper().startswith("AGE-SECRET-KEY-")]
    if len(keys) != 1:
        raise OffsiteError(
            "BACKUP_AGE_KEY is not an age identity (expected one line AGE-SECRET-KEY-1…)", "config"
        )
    try:
        return x25519.Identity.from_str(keys[0])
    except Exception:  # pyrage.IdentityError; its message is safe but says little
        raise OffsiteError(
            "BACKUP_AGE_KEY is not a valid age identity (bad AGE-SECRET-KEY-1… string)", "config"
        ) from None


def check_part_size(part_size: int) -> int:
    if not MIN_PART_SIZE <= part_size < MAX_PART_SIZE:
        raise ValueError(f"part size must be in [{MIN_PART_SIZE}, {MAX_PART_SIZE}) bytes")
    return part_size


@dataclass(frozen=True)
class Part:
    name: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Package:
    """How a backup is stored on the branch: ``package.json`` beside its parts."""

    encrypted: bool
    recipient: str | None
    compression: str
    stored_size: int
    parts: tuple[Part, ...]
    format: int = PACKAGE_FORMAT

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["parts"] = [asdict(part) for part in self.parts]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Package:
        return cls(
            encrypted=bool(data["encrypted"]),
            recipient=data.get("recipient"),
            compression=str(data["compression"]),
            stored_size=int(data["stored_size"]),
            parts=tuple(
                Part(str(p["name"]), int(p["size"]), str(p["sha256"])) for p in data["parts"]
            ),
            format=int(data.get("format", PACKAGE_FORMAT)),
        )


class _PartWriter(io.RawIOBase):
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


class _JoinedReader(io.RawIOBase):
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


def pack(
    source: Path,
    *,
    compressed: bool,
    recipient: x25519.Recipient | None,
    folder: Path,
    part_size: int = PART_SIZE,
) -> tuple[Package, list[Path]]:
    """Write ``source`` into ``folder`` as parts; returns the package description and the paths."""
    check_part_size(part_size)
    suffix = ".zst.age" if recipient is not None else ".zst"
    writer = _PartWriter(folder, part_size, suffix)
    try:
        with source.open("rb") as raw:
            reader: Any = raw
            if not compressed:
                compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_checksum=True)
                reader = compressor.stream_reader(raw, read_size=CHUNK)
            if recipient is not None:
                pyrage.encrypt_io(reader, writer, [recipient])
            else:
                shutil.copyfileobj(reader, writer, CHUNK)
    except OSError as error:
        writer.close()
        raise OffsiteError(f"packing the backup failed: {error.strerror or error}", "io") from None
    except pyrage.EncryptError as error:
        writer.close()
        raise OffsiteError(f"encrypting the backup failed: {error}", "io") from None
    writer.close()
    package = Package(
        encrypted=recipient is not None,
        recipient=str(recipient) if recipient is not None else None,
        compression="zstd",
        stored_size=sum(part.size for part in writer.parts),
        parts=tuple(writer.parts),
    )
    return package, writer.paths


def check_parts(backup_id: str, package: Package, paths: Sequence[Path]) -> None:
    """Every part is there, of its size and sha256; raises OffsiteError naming the bad one."""
    if len(paths) != len(package.parts):
        raise OffsiteError(f"backup {backup_id}: parts are missing", "corrupt")
    for part, path in zip(package.parts, paths, strict=True):
        digest = hashlib.sha256()
        size = 0
        with path.open("rb") as handle:
            while chunk := handle.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
        if size != part.size or digest.hexdigest() != part.sha256:
            raise OffsiteError(
                f"backup {backup_id}: part {part.name} is corrupt (size or sha256 differs)",
                "corrupt",
            )


def unpack(
    backup_id: str,
    package: Package,
    paths: Sequence[Path],
    identity: x25519.Identity | None,
    target: Path,
) -> None:
    """Join, decrypt and decompress the parts into ``target`` (fsynced). Raises OffsiteError."""
    if package.compression != "zstd":
        raise OffsiteError(
            f"backup {backup_id}: unknown compression {package.compression!r}", "corrupt"
        )
    if package.encrypted and identity is None:
        raise OffsiteError(
            f"backup {backup_id} is encrypted: BACKUP_AGE_KEY is needed to restore it", "key"
        )
    check_parts(backup_id, package, paths)
    joined = _JoinedReader(paths)
    try:
        with target.open("wb") as out:
            decompressor = zstandard.ZstdDecompressor().stream_writer(
                out, write_size=CHUNK, closefd=False
            )
            if package.encrypted:
                assert identity is not None
                pyrage.decrypt_io(joined, decompressor, [identity])
            else:
                shutil.copyfileobj(joined, decompressor, CHUNK)
            decompressor.flush()
            out.flush()
            os.fsync(out.fileno())
    except pyrage.DecryptError as error:
        if "no matching keys" in str(error).lower():
            mine = str(identity.to_public()) if identity is not None else "none"
            raise OffsiteError(
                f"backup {backup_id}: the age key does not open it (encrypted to "
                f"{package.recipient}; BACKUP_AGE_KEY is the key of {mine})",
                "key",
            ) from None
        raise OffsiteError(f"backup {backup_id}: cannot decrypt ({error})", "corrupt") from None
    except zstandard.ZstdError as error:
        raise OffsiteError(f"backup {backup_id}: cannot decompress ({error})", "corrupt") from None
    except OSError as error:
        if error.errno is not None:  # the local disk (full, unwritable …)
            raise OffsiteError(
                f"backup {backup_id}: writing the database failed: {error.strerror}", "io"
            ) from None
        # pyrage reports a damaged age stream as OSError("decryption error")
        raise OffsiteError(
            f"backup {backup_id}: cannot unpack ({error.strerror or error})", "corrupt"
        ) from None
    finally:
        joined.close()
