"""Text for the replies: shortening, bounding to one message, times, sizes, and the watchdog's
documents as a few lines."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

MESSAGE_LIMIT = 4096
REPLY_CHUNK = 3900


def shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())  # one line
    return text if len(text) <= limit else text[: limit - 1] + "…"


def bounded(lines: list[str], limit: int = REPLY_CHUNK) -> str:
    """Lines as one message of at most ``limit`` characters: the lines that do not fit are
    left out, and an ellipsis line says so."""
    kept: list[str] = []
    length = 0
    for line in lines:
        line = line[:limit]
        if length + len(line) + 1 > limit - 2:
            kept.append("…")
            break
        kept.append(line)
        length += len(line) + 1
    return "\n".join(kept)


def when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def human_size(value: Any) -> str:
    if not isinstance(value, int | float):
        return "? bytes"
    size = float(value)
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"  # pragma: no cover


def human_age(seconds: Any) -> str:
    if not isinstance(seconds, int | float):
        return "?"
    seconds = max(0, int(seconds))
    for unit, span in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= span:
            return f"{seconds // span} {unit} ago"
    return f"{seconds} s ago"


def format_status(health: dict[str, Any]) -> str:
    """The /health document as a few lines; missing parts are skipped, never fatal."""

    def section(name: str) -> dict[str, Any]:
        value = health.get(name)
        return value if isinstance(value, dict) else {}

    database, storage, bot, checks = (
        section("database"),
        section("storage"),
        section("bot"),
        section("checks"),
    )
    lines = [f"Status: {health.get('status', 'unknown')}"]
    if database:
        lines.append(
            f"Database: {database.get('type', '?')}, {database.get('size_mb', '?')} MB, "
            f"integrity {database.get('integrity', '?')}, "
            f"last backup {database.get('last_backup') or 'never'}"
        )
    if storage:
        lines.append(
            f"Disk: {storage.get('disk_usage_percent', '?')}% used, "
            f"persistent: {storage.get('persistent_disk', '?')}"
        )
    if bot:
        lines.append(
            f"Bot: {bot.get('status', '?')}, pid {bot.get('pid', '?')}, "
            f"restarts {bot.get('restarts', '?')}"
        )
    tiers = section("backups").get("tiers")
    if isinstance(tiers, dict):
        have = [name for name, value in tiers.items() if value]
        lines.append(f"Backups: {', '.join(have) if have else 'none yet'}")
    bad = [
        f"{name} ({check.get('status')}: {check.get('detail', '')})"
        for name, check in checks.items()
        if isinstance(check, dict) and check.get("status") not in ("ok", "healthy", "pass")
    ]
    if checks:
        lines.append(
            f"Checks: {len(checks) - len(bad)} of {len(checks)} ok"
            + (("; " + "; ".join(bad)) if bad else "")
        )
    return "\n".join(lines)


def format_backups(listing: dict[str, Any]) -> str:
    tiers = listing.get("tiers")
    if not isinstance(tiers, dict) or not tiers:
        return "No backups reported."
    lines = ["Newest backup per tier:"]
    for tier, info in tiers.items():
        if not isinstance(info, dict):
            lines.append(f"{tier}: none")
            continue
        lines.append(
            f"{tier}: {info.get('id', '?')}, {human_age(info.get('age_s'))}, "
            f"{human_size(info.get('size_bytes'))}"
        )
    return "\n".join(lines)
