"""Moving the bot's data between SQLite and PostgreSQL, the decisions only: what the target
database is (empty, our own unfinished or finished migration, someone else's), which table and
batch come next, which rows to sample, how two values compare, what the operator is told.

The progress record lives in the target database itself (``_erixcast_migration``), written in
the same transaction as each batch it describes: after a kill the record and the rows agree, so
a re-run continues after the last committed batch, never copies a row twice and never skips one.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from typing import Any

RECORD_TABLE = "_erixcast_migration"
RECORD_FORMAT = 1
BATCH_ROWS = 20_000
SAMPLE_ROWS = 200
"""Rows per table compared column by column after the copy (beside the full row counts)."""


class RecordError(Exception):
    """The progress record in the target is not one this program wrote: one line."""


# -- the URL --------------------------------------------------------------------------------


def scrub(message: str, secrets: Sequence[str]) -> str:
    """A driver's error as one line, with nothing of the password left in it."""
    text = " ".join(part.strip() for part in message.splitlines() if part.strip())
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def with_password_slot(redacted: str) -> str:
    """``postgresql://user:***@host/db`` from ``postgresql://user@host/db``: where the
    password goes, without it."""
    scheme, sep, rest = redacted.partition("://")
    user, at, host = rest.partition("@")
    if not sep or not at or "/" in user:
        return redacted
    return f"{scheme}://{user}:***@{host}"


# -- the record -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TableProgress:
    name: str
    total: int
    """Rows of this table in the snapshot."""
    copied: int = 0
    after: int = 0
    """The snapshot's rowid of the last row copied (before the first: the smallest rowid - 1)."""

    @property
    def done(self) -> bool:
        return self.copied >= self.total


@dataclass(frozen=True)
class Record:
    snapshot: str
    """The snapshot file's name in DATA_DIR: the source every batch is read from."""
    sha256: str
    source: str
    taken_at: float
    live: bool
    """A watchdog ran (the bot may have written) while the snapshot was taken."""
    tables: tuple[TableProgress, ...]
    copied_at: float | None = None
    """When the last batch was copied and the sequences moved past the ids."""
    verified_at: float | None = None

    def table(self, name: str) -> TableProgress:
        for progress in self.tables:
            if progress.name == name:
                return progress
        raise KeyError(name)

    @property
    def rows(self) -> int:
        return sum(t.total for t in self.tables)

    @property
    def copied(self) -> int:
        return sum(t.copied for t in self.tables)


def record_document(record: Record) -> dict[str, Any]:
    return {
        "format": RECORD_FORMAT,
        "snapshot": record.snapshot,
        "sha256": record.sha256,
        "source": record.source,
        "taken_at": record.taken_at,
        "live": record.live,
        "copied_at": record.copied_at,
        "verified_at": record.verified_at,
        "tables": [
            {"name": t.name, "total": t.total, "copied": t.copied, "after": t.after}
            for t in record.tables
        ],
    }


def parse_record(document: object) -> Record:
    """The record read back from the target (input from outside: checked field by field)."""
    if not isinstance(document, dict) or document.get("format") != RECORD_FORMAT:
        raise RecordError(f"{RECORD_TABLE} holds a record of an unknown format")
    try:
        tables = tuple(
            TableProgress(
                _text(t["name"]), _count(t["total"]), _count(t["copied"]), _whole(t["after"])
            )
            for t in document["tables"]
        )
        record = Record(
            snapshot=_text(document["snapshot"]),
            sha256=_text(document["sha256"]),
            source=_text(document["source"]),
            taken_at=float(document["taken_at"]),
            live=bool(document["live"]),
            tables=tables,
            copied_at=_moment(document.get("copied_at")),
            verified_at=_moment(document.get("verified_at")),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise RecordError(f"{RECORD_TABLE} holds a damaged record ({error})") from None
    if "/" in record.snapshot or record.snapshot.startswith("."):
        raise RecordError(f"{RECORD_TABLE} names an odd snapshot file {record.snapshot!r}")
    for t in tables:
        if t.copied > t.total:
            raise RecordError(f"{RECORD_TABLE}: {t.name} has more rows copied than it holds")
    return record


def _text(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("a text field is empty or not text")
    return value


def _count(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError("a count is not a whole number ≥ 0")
    return value


def _whole(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError("a rowid is not a whole number")
    return value


def _moment(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]


# -- the target -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    kind: str  # "empty" | "unfinished" | "finished" | "foreign"
    line: str


def judge_target(tables: Collection[str], record: Record | None, where: str) -> Target:
    """What the target database is (``where``: its URL without the password), from the tables
    it holds and our record if it has one."""
    if record is None:
        if not tables:
            return Target("empty", f"{where} is empty")
        shown = ", ".join(sorted(tables)[:5]) + (" …" if len(tables) > 5 else "")
        return Target(
            "foreign",
            f"{where} is not empty ({len(tables)} tables: {shown}) and holds no unfinished "
            "migration of ours: migrate only into a new, empty database",
        )
    if record.verified_at is not None:
        return Target(
            "finished",
            f"{where} already holds a finished migration: {record.rows} rows from "
            f"{record.source}, verified",
        )
    return Target(
        "unfinished",
        f"{where} holds an unfinished migration ({record.copied} of {record.rows} rows copied): "
        "continuing it",
    )


# -- the batches ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Batch:
    table: str
    after: int
    """Copy the rows whose rowid is above this, in rowid order…"""
    limit: int
    """…at most this many."""


def next_batch(record: Record, batch_rows: int = BATCH_ROWS) -> Batch | None:
    """The next batch to copy (tables in the record's order), or None: every row is copied."""
    for progress in record.tables:
        if not progress.done:
            return Batch(
                progress.name, progress.after, min(batch_rows, progress.total - progress.copied)
            )
    return None


def advance(record: Record, table: str, last_rowid: int, rows: int) -> Record:
    """The record once a batch of ``rows`` rows ending at ``last_rowid`` is in the target."""
    progress = record.table(table)
    if rows <= 0 or last_rowid <= progress.after or progress.copied + rows > progress.total:
        raise ValueError(
            f"{table}: a batch of {rows} rows ending at rowid {last_rowid} does not follow "
            f"{progress.copied} rows ending at {progress.after} of {progress.total}"
        )
    moved = replace(progress, copied=progress.copied + rows, after=last_rowid)
    return replace(record, tables=tuple(moved if t.name == table else t for t in record.tables))


def copy_problem(batch: Batch, got: int) -> str | None:
    """A batch read from the snapshot that is short of what the record expects: the snapshot is
    not the one the migration began with."""
    if got == 0 or got < batch.limit:
        return (
            f"{batch.table}: the snapshot gave {got} rows where {batch.limit} were expected: it "
            "changed since the migration began"
        )
    return None


# -- the verification -----------------------------------------------------------------------


def sample_points(low: int, high: int, count: int = SAMPLE_ROWS, seed: int = 0) -> list[int]:
    """Keys to look up in ``[low, high]`` (inclusive): both ends, an even spread, and some at
    random (the same for the same seed), sorted, no repeats."""
    if high < low:
        return []
    span = high - low
    if span + 1 <= count:
        return list(range(low, high + 1))
    even = count // 2
    points = {low, high}
    points.update(low + span * i // max(even - 1, 1) for i in range(even))
    rng = random.Random(seed)
    while len(points) < count:
        points.add(rng.randint(low, high))
    return sorted(points)


def normal(value: object) -> object:
    """One value as both databases mean it: integers whatever their Python type, text as text,
    bytes as bytes (memoryview, bytearray), floats as floats."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    return value


def row_differences(
    where: str, columns: Sequence[str], source: Sequence[object], target: Sequence[object] | None
) -> list[str]:
    """What differs between a row of the source and the same key's row in the target
    (``where`` names the row: ``messages id=42``)."""
    if target is None:
        return [f"{where}: missing in the target"]
    return [
        f"{where}: {column} is {_short(normal(b))} in the target, {_short(normal(a))} in the source"
        for column, a, b in zip(columns, source, target, strict=True)
        if normal(a) != normal(b)
    ]


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "…"


def count_differences(source: dict[str, int], target: dict[str, int]) -> list[str]:
    return [
        f"{name}: {target.get(name, 0)} rows in the target, {count} in the source"
        for name, count in source.items()
        if target.get(name, 0) != count
    ]


# -- what the operator is told --------------------------------------------------------------


def switch_over(where: str, record: Record, live_now: bool) -> list[str]:
    """The steps to run the bot on the migrated database (``where``: its URL without the
    password)."""
    lines = [
        f"{record.rows} rows in {len(record.tables)} tables copied to {where} and verified "
        "(row counts, key sums, sampled rows compared column by column)",
    ]
    if record.live or live_now:
        lines.append(
            "the bot was running: what it wrote after the snapshot is NOT in PostgreSQL. Before "
            "switching, stop the stack and run this migration again into a new empty database "
            "(a rehearsal like this one tells how long the maintenance window lasts)"
        )
    lines += [
        "to switch over:",
        "  1. stop the stack (Ctrl-C on make run, or suspend the Render service)",
        f"  2. set DATABASE_URL={with_password_slot(where)} (*** the password) in the environment "
        "or .env",
        "  3. start the stack: the bot now reads and writes PostgreSQL; the SQLite file stays "
        "where it is, untouched, as the way back",
    ]
    return lines
