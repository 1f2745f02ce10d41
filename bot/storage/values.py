"""How values are written: timestamps as sortable text, text that any database can store."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def timestamp(moment: datetime) -> str:
    """UTC ISO 8601 with microseconds: sorts as text, reads the same in any database."""
    if moment.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def clean_text(value: str | None) -> str | None:
    """Text any database can store: lone surrogates (not valid Unicode) and NUL (which
    PostgreSQL's text refuses) become U+FFFD."""
    if value is None:
        return None
    if "\x00" in value:
        value = value.replace("\x00", "\ufffd")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return value


def text_or_none(value: Any) -> str | None:
    return None if value is None else clean_text(str(value))
