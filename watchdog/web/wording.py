"""How the watchdog words numbers for people, on the status page and in the terminal alike:
one place, so ``status``, ``list`` and ``GET /`` say an age the same way."""

from __future__ import annotations

from datetime import UTC, datetime


def span(seconds: float | None) -> str:
    """A short human duration: ``45s``, ``12m``, ``3h05m``, ``2d04h``; ``-`` for none."""
    if seconds is None:
        return "-"
    whole = max(0, int(seconds))
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m"
    if whole < 86400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d{whole % 86400 // 3600:02d}h"


def moment(timestamp: float | None) -> str:
    """``2026-05-01 13:04 UTC``; ``-`` for none."""
    if timestamp is None:
        return "-"
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M UTC")


def ago(iso: str | None, now_iso: str | None) -> str:
    """``3m ago`` for an ISO time against another (the document's own ``time``, so no clock
    skew between who wrote it and who reads it); ``never`` for none; the text as it is when it
    cannot be read."""
    if not iso:
        return "never"
    try:
        seconds = (
            datetime.fromisoformat(str(now_iso)) - datetime.fromisoformat(iso)
        ).total_seconds()
    except (TypeError, ValueError):
        return str(iso)
    return f"{span(seconds)} ago"
