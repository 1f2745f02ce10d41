"""The bot's clock: now, or, while an update is replayed from the journal, the moment it first
arrived (so what replay stores carries the times it would have had)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime

_replayed_at: ContextVar[datetime | None] = ContextVar("replayed_at", default=None)


def utc_now() -> datetime:
    """Now, timezone-aware (the storage refuses naive times)."""
    return _replayed_at.get() or datetime.now(UTC)


@contextlib.contextmanager
def replaying_at(moment: datetime) -> Iterator[None]:
    """While an update from the journal is handled again: ``utc_now`` is when it arrived."""
    token = _replayed_at.set(moment)
    try:
        yield
    finally:
        _replayed_at.reset(token)
