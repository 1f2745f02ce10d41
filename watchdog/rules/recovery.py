"""Recovery decisions as plain functions: is recovery needed, and which backups to try first."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

B = TypeVar("B")


def recovery_reason(
    check_state: str, detail: str, database_seen: bool, has_backups: bool
) -> str | None:
    """Why the database must be recovered, or None.

    A missing database is a first run only when no database was ever seen here and no backup
    exists; otherwise it was lost (deleted, a disk swapped, a bad restore) and comes back.
    """
    if check_state == "corrupt":
        return detail or "the database failed its check"
    if check_state == "missing" and (database_seen or has_backups):
        return "the database file is missing"
    return None


def candidates_newest_first(backups_oldest_first: Sequence[B]) -> list[B]:
    """Every verified local backup, newest first across all tiers: a restart snapshot taken a
    minute ago beats last night's daily one. The catalogue lists oldest first."""
    return list(reversed(backups_oldest_first))


def vanished_tables(known: set[str], current: set[str]) -> set[str]:
    """Tables seen in this database before and gone now. A schema only grows here, so a loss
    means the file is not the one we had: most often a ``-wal`` from another database, which
    SQLite replays without complaint (integrity_check then passes on the wrong data)."""
    return known - current


def integrity_verdict(
    check_state: str, detail: str, tables: set[str], known_tables: set[str]
) -> tuple[str, str]:
    """What a finished check means: ``integrity_check`` passing on a file whose tables have
    vanished since the last check is still a corrupt database (see ``vanished_tables``)."""
    if check_state != "ok":
        return check_state, detail
    vanished = vanished_tables(known_tables, tables)
    if vanished:
        return (
            "corrupt",
            f"tables missing since the last check: {', '.join(sorted(vanished))} "
            "(a foreign or stale -wal?)",
        )
    return check_state, detail
