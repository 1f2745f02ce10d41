"""Recovery decisions as plain functions: is recovery needed, which candidates to try first, and
whether a candidate's schema is the bot's own."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol, TypeVar

from conf.schema import SchemaRow
from watchdog.rules.schedule import FUTURE_SLACK


class Dated(Protocol):
    """A local backup or an offsite entry: what ordering candidates needs of it."""

    @property
    def id(self) -> str: ...

    @property
    def created_at(self) -> float: ...


B = TypeVar("B", bound=Dated)


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


def future_dated(created_at: float, now: float) -> bool:
    """Stamped more than ``FUTURE_SLACK`` (clock skew) ahead of the clock: its age is unknown."""
    return created_at > now + FUTURE_SLACK


def candidates_newest_first(candidates: Iterable[B], now: float) -> list[B]:
    """The order to try candidates in (local backups, or offsite entries): newest first across
    all tiers — a restart snapshot taken a minute ago beats last night's daily one — then those
    dated in the future.

    A backup stamped ahead of the clock is never "the newest": its stamp is the one thing about
    it known to be wrong (a clock that went back, another machine's clock, or a forged
    manifest), so it must not win over backups whose age is known. It is put last rather than
    refused because it is still a backup that may prove itself (sha256, schema,
    integrity_check): after a clock jump back it may be the only copy of the recent rows, and
    trying it beats a fresh start. Among those, the nearest to now comes first (the least
    implausible stamp)."""
    items = list(candidates)
    trusted = [item for item in items if not future_dated(item.created_at, now)]
    ahead = [item for item in items if future_dated(item.created_at, now)]
    trusted.sort(key=lambda item: (item.created_at, item.id), reverse=True)
    ahead.sort(key=lambda item: (item.created_at, item.id))
    return trusted + ahead


def latest_trusted(candidates: Iterable[B], now: float) -> B | None:
    """What ``restore latest`` means: the newest candidate not dated in the future (one dated in
    the future is restored only when an operator names it)."""
    ordered = candidates_newest_first(candidates, now)
    if ordered and not future_dated(ordered[0].created_at, now):
        return ordered[0]
    return None


def full_check_needed(checked_sha256: str | None, sha256: str, trust_hash: bool) -> bool:
    """Whether a local backup must pass ``integrity_check`` again before it is installed.

    Not when its manifest records that the full check passed on the very bytes its sha256 names
    (``checked_sha256 == sha256``) and the hash may be trusted for it: a copy that hashes to it is
    those bytes, and the full check of the installed file runs once the bot is back (a failure
    then is a new recovery). ``trust_hash`` is False in the recovery that follows such a failure:
    a manifest can be forged with the file, so the hash alone is never trusted twice in a row."""
    return not (trust_hash and checked_sha256 is not None and checked_sha256 == sha256)


# -- the schema: a candidate must hold the bot's, nothing more --------------------------------

SQLITE_STAT_TABLES: tuple[SchemaRow, ...] = (
    ("table", "sqlite_stat1", "sqlite_stat1", "CREATE TABLE sqlite_stat1(tbl,idx,stat)"),
    (
        "table",
        "sqlite_stat4",
        "sqlite_stat4",
        "CREATE TABLE sqlite_stat4(tbl,idx,neq,nlt,ndlt,sample)",
    ),
)
"""What ``ANALYZE`` (or ``PRAGMA optimize``) creates, exactly as SQLite writes it."""
SQLITE_SEQUENCE: SchemaRow = (
    "table",
    "sqlite_sequence",
    "sqlite_sequence",
    "CREATE TABLE sqlite_sequence(name,seq)",
)
"""What SQLite creates for the first ``AUTOINCREMENT`` table."""
FTS5_SHADOW_SUFFIXES = ("data", "idx", "content", "docsize", "config")


def sqlite_own_rows(expected: Iterable[SchemaRow]) -> tuple[SchemaRow, ...]:
    """Rows SQLite itself may add to a database made from ``expected``, beyond what the DDL
    makes: the ``ANALYZE`` tables always; ``sqlite_sequence`` only when a declared table uses
    ``AUTOINCREMENT``. (FTS5 shadow tables and automatic indexes are in ``expected`` already:
    they come with the DDL.)"""
    autoincrement = any(
        kind == "table" and "AUTOINCREMENT" in (sql or "").upper() for kind, _, _, sql in expected
    )
    return SQLITE_STAT_TABLES + ((SQLITE_SEQUENCE,) if autoincrement else ())


def schema_differences(actual: Iterable[SchemaRow], expected: Sequence[SchemaRow]) -> list[str]:
    """What makes ``actual`` (a candidate's ``sqlite_schema`` rows) not a database of the app
    whose DDL gives ``expected``; [] when it is one.

    - extra: a table, index, trigger or view whose name ``expected`` lacks, unless it is one of
      :func:`sqlite_own_rows` with exactly SQLite's own text;
    - altered: a name ``expected`` has, with another type, table or SQL text (compared
      exactly: SQLite keeps the DDL's text as written);
    - duplicate: a name twice (names are one case-insensitive namespace in SQLite; only a
      hand-edited schema has two);
    - missing piece: a declared FTS5 table present without one of its shadow tables.

    Missing objects are otherwise allowed: an older database lacks what later versions of the
    app added, and the app creates it at start-up (``IF NOT EXISTS``). The order of rows does
    not matter (an older database whose search index was built later holds it further on).
    """
    wanted = {row[1].lower(): row for row in expected}
    own = {row[1].lower(): row for row in sqlite_own_rows(expected)}
    by_name: dict[str, list[SchemaRow]] = {}
    for row in actual:
        by_name.setdefault(row[1].lower(), []).append(row)
    problems: list[str] = []
    for key, rows in sorted(by_name.items()):
        if len(rows) > 1:
            named = ", ".join(f"{kind} {name}" for kind, name, _, _ in sorted(rows))
            problems.append(f"duplicate name {key}: {named}")
            continue
        row = rows[0]
        reference = wanted.get(key) or own.get(key)
        if reference is None:
            problems.append(f"extra {row[0]} {row[1]}")
        elif row != reference:
            now_a = f" (now a {row[0]})" if row[0] != reference[0] else ""
            problems.append(f"altered {reference[0]} {reference[1]}{now_a}")
    present = set(by_name)
    for kind, name, _, sql in expected:
        if kind != "table" or not (sql or "").upper().startswith("CREATE VIRTUAL TABLE"):
            continue
        if name.lower() not in present:
            continue
        for suffix in FTS5_SHADOW_SUFFIXES:
            shadow = f"{name}_{suffix}".lower()
            if shadow in wanted and shadow not in present:
                problems.append(f"missing table {wanted[shadow][1]} of {name}")
    return problems


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


SALVAGE_WAITS_AT_MOST = 120.0
"""Seconds a pending salvage waits for the bot to answer before it runs anyway."""


def salvage_may_start(phase: str, waited: float) -> bool:
    """A quarantined file's salvage (a long read, then a merge) starts once the bot answers, so
    it never slows the bot's start-up; or when there is no bot to wait for (none configured);
    or after SALVAGE_WAITS_AT_MOST (a bot held or failing does not keep it pending forever)."""
    return phase in ("running", "not_configured") or waited >= SALVAGE_WAITS_AT_MOST
