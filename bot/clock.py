"""The bot's clock."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    """Now, timezone-aware (the storage refuses naive times)."""
    return datetime.now(UTC)
