"""Packing a backup for the offsite branch and unpacking it again, streaming all the way.

pack:   database (or its .zst) → zstandard (unless already compressed) → age → parts on disk
unpack: parts → joined → age → zstandard → the plain database, stopping at its expected size

Memory stays flat whatever the size: every stage reads and writes in chunks (pyrage's
``encrypt_io``/``decrypt_io`` stream). Each part is below ``MAX_PART_SIZE`` (GitHub warns over
50 MB and refuses over 100 MB per file) and carries its own sha256, so a damaged part is named.
A package read back from the branch is input: :meth:`Package.from_dict` checks every field
(part names, sizes, counts) before anything uses it. All decryption goes through
:func:`decrypt_stream` and :func:`decrypt_bytes`, and only after the package's MAC passed.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyrage
import zstandard
from pyrage import x25519

from conf.units import MIB
from watchdog.data.fs import free_bytes
from watchdog.data.snapshot import CHUNK
from watchdog.offsite.errors import OffsiteError
from watchdog.offsite.streams import BoundedWriter, JoinedReader, Part, PartWriter, TooLarge

MAX_PART_SIZE = 45_000_000
"""Parts are strictly smaller than this."""
PART_SIZE = 40 * 1024 * 1024
MIN_PART_SIZE = 1024
MAX_PARTS = 10_000
"""Far above any real database (450 GB): a package naming more is refused unread."""
MAX_META_SIZE = 1 * MIB
"""``package.json`` and the encrypted manifest are a few KB; anything larger is not read."""
ROOM_MARGIN = 16 * MIB
"""Free space kept beyond what an unpack will write, so a restore never fills the disk."""
ZSTD_LEVEL = 3
PACKAGE_FORMAT = 2
"""1: no MAC, manifest in clear (read only on an operator's explicit opt-in). 2: authenticated."""
PACKAGE_KIND = "erixcast-offsite-package"
JOURNAL_KIND = "erixcast-offsite-journal"
"""The authenticated ``kind`` of a package of update-journal lines: the MAC covers it, so a
journal package is never opened as a backup, nor a backup as a journal."""
PGDUMP_KIND = "erixcast-offsite-pgdump"
"""The authenticated ``kind`` of a package of a PostgreSQL dump (``pg_dump -Fc``): never
installed as a SQLite file, nor a SQLite backup restored into a server."""
BACKUP_KINDS = (PACKAGE_KIND, PGDUMP_KIND)
"""The kinds that are backups of the database (counted and rotated together)."""
MANIFEST_BLOB = "manifest.age"
PART_NAME = re.compile(r"part-[0-9]{4,6}\.zst(\.age)?")
SHA256 = re.compile(r"[0-9a-f]{64}")

__all__ = ["Package", "Part", "pack", "parse_identity", "unpack"]


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


def check_part_name(name: object) -> str:
    """A part name is a plain file name of the form we write; never a path, never ``..``."""
    if (
        not isinstance(name, str)
        or not name
        or any(sep in name for sep in ("/", "\\", "\0"))
        or name in (".", "..")
        or name.startswith((".", "-"))
        or os.path.isabs(name)
        or not PART_NAME.fullmatch(name)
    ):
        raise ValueError(f"unsafe part name {str(name)[:60]!r}")
    return name


def _size(value: object, limit: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < limit:
        raise ValueError("a size is out of bounds")
    return value


def _digest(value: object) -> str:
    if not isinstance(value, str) or not SHA256.fullmatch(value):
        raise ValueError("not a sha256")
    return value


def _part(data: object, limit: int, name_check: Any) -> Part:
    if not isinstance(data, dict):
        raise ValueError("a part is not an object")
    return Part(name_check(data["name"]), _size(data["size"], limit), _digest(data["sha256"]))


@dataclass(frozen=True)
class Package:
    """How a backup is stored on the branch: ``package.json`` beside its parts."""

    encrypted: bool
    recipient: str | None
    compression: str
    stored_size: int
    parts: tuple[Part, ...]
    format: int = PACKAGE_FORMAT
    id: str | None = None
    """Format 2: the backup's id, so the MAC binds the package to its folder and manifest."""
    manifest: Part | None = None
    """Format 2: the encrypted manifest's blob (name, size, sha256)."""
    kind: str = PACKAGE_KIND
    """Format 2: ``PACKAGE_KIND`` (a database) or ``JOURNAL_KIND`` (journal lines)."""

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "format": self.format,
            "encrypted": self.encrypted,
            "recipient": self.recipient,
            "compression": self.compression,
            "stored_size": self.stored_size,
            "parts": [vars(part) for part in self.parts],
        }
        if self.format >= 2:
            assert self.manifest is not None
            data.update(kind=self.kind, id=self.id, manifest=vars(self.manifest))
        return data

    @classmethod
    def from_dict(
        cls, data: Any, backup_id: str | None = None, kind: str | tuple[str, ...] = BACKUP_KINDS
    ) -> Package:
        """Every field checked; raises ValueError (KeyError, TypeError) on anything else, a
        package of another ``kind`` included."""
        if not isinstance(data, dict):
            raise ValueError("a package is an object")
        form = data.get("format", 1)
        if form not in (1, 2) or isinstance(form, bool):
            raise ValueError(f"unknown package format {form!r}")
        raw_parts = data["parts"]
        if not isinstance(raw_parts, list) or not 1 <= len(raw_parts) <= MAX_PARTS:
            raise ValueError("part count out of bounds")
        parts = tuple(_part(item, MAX_PART_SIZE, check_part_name) for item in raw_parts)
        if len({part.name for part in parts}) != len(parts):
            raise ValueError("two parts share a name")
        stored = data["stored_size"]
        if isinstance(stored, bool) or stored != sum(part.size for part in parts):
            raise ValueError("stored_size is not the sum of the parts")
        if data["compression"] != "zstd":
            raise ValueError(f"unknown compression {str(data['compression'])[:20]!r}")
        recipient = data.get("recipient")
        if recipient is not None and not isinstance(recipient, str):
            raise ValueError("recipient is not text")
        package = cls(
            encrypted=data["encrypted"] is True,
            recipient=recipient,
            compression="zstd",
            stored_size=stored,
            parts=parts,
            format=form,
        )
        if form == 1:
            return package
        wanted = (kind,) if isinstance(kind, str) else kind
        found = data.get("kind")
        if found in (*BACKUP_KINDS, JOURNAL_KIND) and found not in wanted:
            what = "journal lines" if found == JOURNAL_KIND else "a database backup"
            raise ValueError(f"it is a package of {what}, not of what was asked")
        if found not in wanted or not package.encrypted:
            raise ValueError("not an encrypted offsite package")
        if backup_id is not None and data.get("id") != backup_id:
            raise ValueError("the package names another backup")
        manifest = _part(data["manifest"], MAX_META_SIZE, _manifest_name)
        return cls(**{**vars(package), "id": str(data["id"]), "manifest": manifest, "kind": found})


def _manifest_name(name: object) -> str:
    if name != MANIFEST_BLOB:
        raise ValueError("unexpected manifest name")
    return MANIFEST_BLOB


# -- the one place age runs ------------------------------------------------------------------


def encrypt_bytes(data: bytes, recipient: x25519.Recipient) -> bytes:
    return pyrage.encrypt(data, [recipient])


def decrypt_bytes(data: bytes, identity: x25519.Identity) -> bytes:
    """A small authenticated blob (the manifest). Raises pyrage.DecryptError."""
    return pyrage.decrypt(data, [identity])


def decrypt_stream(reader: Any, writer: Any, identity: x25519.Identity) -> None:
    pyrage.decrypt_io(reader, writer, [identity])


# -- pack and unpack -------------------------------------------------------------------------


def pack(
    source: Path,
    *,
    compressed: bool,
    recipient: x25519.Recipient,
    folder: Path,
    part_size: int = PART_SIZE,
) -> tuple[tuple[Part, ...], list[Path]]:
    """Write ``source`` into ``folder`` as age-encrypted parts; returns the parts and paths."""
    check_part_size(part_size)
    writer = PartWriter(folder, part_size, ".zst.age")
    try:
        with source.open("rb") as raw:
            reader: Any = raw
            if not compressed:
                compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_checksum=True)
                reader = compressor.stream_reader(raw, read_size=CHUNK)
            pyrage.encrypt_io(reader, writer, [recipient])
    except OSError as error:
        writer.close()
        raise OffsiteError(f"packing the backup failed: {error.strerror or error}", "io") from None
    except pyrage.EncryptError as error:
        writer.close()
        raise OffsiteError(f"encrypting the backup failed: {error}", "io") from None
    writer.close()
    return tuple(writer.parts), writer.paths


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
                if size > part.size:
                    break
        if size != part.size or digest.hexdigest() != part.sha256:
            raise OffsiteError(
                f"backup {backup_id}: part {part.name} is corrupt (size or sha256 differs)",
                "corrupt",
            )


def ensure_room(folder: Path, needed: int, what: str) -> None:
    """Refuse to start writing ``needed`` bytes into ``folder`` without room for them."""
    folder.mkdir(parents=True, exist_ok=True)
    free = free_bytes(folder)
    if free < needed + ROOM_MARGIN:
        raise OffsiteError(
            f"{what} needs {needed / MIB:.1f} MB free in {folder} (and {ROOM_MARGIN // MIB} MB to "
            f"spare); only {free / MIB:.1f} MB are",
            "space",
        )


def unpack(
    backup_id: str,
    package: Package,
    paths: Sequence[Path],
    identity: x25519.Identity | None,
    target: Path,
    *,
    size_limit: int,
) -> None:
    """Join, decrypt and decompress the parts into ``target`` (fsynced), writing at most
    ``size_limit`` bytes (the authenticated manifest's ``size_bytes``): refused without room
    for them, stopped the moment the output would pass them. Raises OffsiteError; a
    ``target`` it started is removed."""
    if package.encrypted and identity is None:
        raise OffsiteError(
            f"backup {backup_id} is encrypted: BACKUP_AGE_KEY is needed to restore it", "key"
        )
    ensure_room(target.parent, size_limit, f"restoring backup {backup_id}")
    check_parts(backup_id, package, paths)
    try:
        _unpack(backup_id, package, paths, identity, target, size_limit)
    except BaseException:
        target.unlink(missing_ok=True)
        raise


def _unpack(
    backup_id: str,
    package: Package,
    paths: Sequence[Path],
    identity: x25519.Identity | None,
    target: Path,
    size_limit: int,
) -> None:
    joined = JoinedReader(paths)
    try:
        with target.open("wb") as out:
            bounded = BoundedWriter(out, size_limit)
            decompressor = zstandard.ZstdDecompressor().stream_writer(
                bounded, write_size=CHUNK, closefd=False
            )
            if package.encrypted:
                assert identity is not None
                decrypt_stream(joined, decompressor, identity)
            else:
                shutil.copyfileobj(joined, decompressor, CHUNK)
            decompressor.flush()
            out.flush()
            os.fsync(out.fileno())
    except TooLarge:
        raise OffsiteError(
            f"backup {backup_id}: decompresses past its manifest's size ({size_limit} bytes); "
            "stopped there",
            "corrupt",
        ) from None
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
