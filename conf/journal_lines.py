"""One line of the update journal and of the erasure record: the one encoder and decoder.

    <16 hex digits of sha256(payload)> <payload: one JSON object>\\n

Shared by :mod:`conf.journal` (segments) and :mod:`conf.erasures` (the erasure record).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

FORMAT = 1
UPDATE = "update"
ERASURE = "erasure"
ERASURES_FILE = "erasures.jsonl"
_CHECKSUM = re.compile(rb"^[0-9a-f]{16}$")


class JournalLineError(ValueError):
    """A line of the journal that cannot be trusted."""


@dataclass(frozen=True)
class JournalEntry:
    """One update as Telegram sent it, or the record of one erasure."""

    kind: str
    update_id: int
    at: float
    """Seconds since the epoch when the entry was written."""
    user_id: int | None = None
    update: Mapping[str, Any] | None = None
    """The raw update (kind ``update``)."""

    def payload(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "v": FORMAT,
            "kind": self.kind,
            "update_id": self.update_id,
            "at": self.at,
            "user": self.user_id,
        }
        if self.update is not None:
            document["update"] = self.update
        return document


def encode(entry: JournalEntry) -> bytes:
    # ASCII: a lone surrogate (Telegram sends what users type) round-trips as its escape.
    payload = json.dumps(entry.payload(), separators=(",", ":")).encode()
    return _checksum(payload) + b" " + payload + b"\n"


def _checksum(payload: bytes) -> bytes:
    return hashlib.sha256(payload).hexdigest()[:16].encode()


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def decode(line: bytes) -> JournalEntry:
    """The entry a complete line (newline included) holds, or :class:`JournalLineError`."""
    if not line.endswith(b"\n"):
        raise JournalLineError("the line does not end (torn write)")
    checksum, _, payload = line[:-1].partition(b" ")
    if not _CHECKSUM.match(checksum):
        raise JournalLineError("no checksum at the start of the line")
    if _checksum(payload) != checksum:
        raise JournalLineError("the checksum does not match the line")
    try:
        document = json.loads(payload)
    except (ValueError, RecursionError) as error:
        raise JournalLineError(f"not JSON ({type(error).__name__})") from None
    if not isinstance(document, dict) or document.get("v") != FORMAT:
        raise JournalLineError("not an entry of journal format 1")
    kind, update_id, at, user = (document.get(k) for k in ("kind", "update_id", "at", "user"))
    if kind not in (UPDATE, ERASURE):
        raise JournalLineError(f"unknown kind {str(kind)[:20]!r}")
    if not _integer(update_id) or update_id < 0:
        raise JournalLineError("update_id is not a non-negative integer")
    if not isinstance(at, int | float) or isinstance(at, bool) or not math.isfinite(at):
        raise JournalLineError("at is not a time")
    if user is not None and not _integer(user):
        raise JournalLineError("user is not an integer")
    update = document.get("update")
    if kind == UPDATE:
        if not isinstance(update, dict) or update.get("update_id") != update_id:
            raise JournalLineError("the update does not carry its update_id")
    elif user is None or update is not None:
        raise JournalLineError("an erasure names a user and nothing else")
    return JournalEntry(kind, update_id, float(at), user, update)
