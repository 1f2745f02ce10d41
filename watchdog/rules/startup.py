"""How much to check the live database before the bot starts, as plain functions.

A full ``PRAGMA integrity_check`` of a 1 GB file takes about 20 s on this machine: before every
launch it is most of a deploy's downtime. It is needed first only when the file may have changed
outside our control. The watchdog leaves a *clean-stop record* when it last let go of the file in
order (an orderly stop with the bot stopped, or an operator's restore holding the watchdog's
lock): the file's size, mtime (ns), inode, SQLite's header change counter (bytes 24–27) and its
``-wal``. When the file at start is still exactly that one, ``PRAGMA quick_check`` runs before
launch and the full check right after, with the bot up; in every other case — no record, a record
that does not parse, one that does not match, one left with a full check still owed — the full
check comes first, as it always did.

The record is a file in DATA_DIR, i.e. input: :func:`parse_record` accepts exactly the shape
:meth:`CleanStop.as_dict` writes, and anything else is no record at all.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

RECORD_FORMAT = 1
Proof = Literal["full-check", "sha256", "none"]
"""What vouches for the file's content as it was left: a full check that passed while we held
it (its writes since came from our own bot), an install proven by the sha256 of bytes a full
check passed on, or nothing (a quick start whose full check had not finished)."""
PROOFS: tuple[str, ...] = ("full-check", "sha256", "none")
MAX_WHOLE = 1 << 62


@dataclass(frozen=True)
class FileFacts:
    """What the watchdog can see of the database without reading its pages."""

    size: int
    mtime_ns: int
    inode: int
    change_counter: int
    """SQLite's file change counter, bytes 24–27 of the header (every rollback-mode commit
    bumps it; in WAL mode it moves at checkpoints)."""
    wal_size: int | None
    """Size of ``-wal``; None when there is none."""


@dataclass(frozen=True)
class CleanStop:
    database: str
    """The path the facts are of."""
    facts: FileFacts
    proof: Proof
    at: float
    format: int = RECORD_FORMAT

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class StartCheck:
    quick: bool
    """True: ``quick_check`` before launch, the full check right after. False: full check first."""
    why: str


def _whole(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < MAX_WHOLE:
        raise ValueError(f"{name}: not a whole number ≥ 0")
    return value


def parse_record(document: Any) -> CleanStop:
    """The record as :meth:`CleanStop.as_dict` writes it; ValueError for anything else."""
    if not isinstance(document, dict):
        raise ValueError(f"not an object but {type(document).__name__}")
    if set(document) != {"database", "facts", "proof", "at", "format"}:
        raise ValueError("not the fields of a clean-stop record")
    if document["format"] != RECORD_FORMAT or isinstance(document["format"], bool):
        raise ValueError(f"format {document['format']!r} is not {RECORD_FORMAT}")
    database, proof, at, facts = (document[k] for k in ("database", "proof", "at", "facts"))
    if not isinstance(database, str) or not database:
        raise ValueError("database: not a path")
    if proof not in PROOFS:
        raise ValueError(f"proof: {proof!r} is not one of {PROOFS}")
    if isinstance(at, bool) or not isinstance(at, int | float) or not math.isfinite(at):
        raise ValueError("at: not a time")
    if not isinstance(facts, dict) or set(facts) != {
        "size",
        "mtime_ns",
        "inode",
        "change_counter",
        "wal_size",
    }:
        raise ValueError("facts: not the fields of a file's facts")
    wal = facts["wal_size"]
    parsed = FileFacts(
        size=_whole(facts["size"], "size"),
        mtime_ns=_whole(facts["mtime_ns"], "mtime_ns"),
        inode=_whole(facts["inode"], "inode"),
        change_counter=_whole(facts["change_counter"], "change_counter"),
        wal_size=None if wal is None else _whole(wal, "wal_size"),
    )
    return CleanStop(database, parsed, proof, float(at))


def start_check(
    record: CleanStop | None, problem: str | None, database: str, facts: FileFacts | None
) -> StartCheck:
    """How to check the database before launch. ``record``: the clean-stop record read at start
    (None: there was none, or ``problem`` says why it could not be used); ``facts``: the file as
    it is now (None: it is missing or unreadable)."""
    if record is None:
        return StartCheck(False, problem or "no clean-stop record: the last stop was not ours")
    if facts is None:
        return StartCheck(False, "the database cannot be looked at")
    if record.database != database:
        return StartCheck(False, "the clean-stop record is of another database path")
    if record.proof == "none":
        return StartCheck(False, "the last start's full check had not finished when it stopped")
    differs = [
        name
        for name in ("size", "mtime_ns", "inode", "change_counter", "wal_size")
        if getattr(record.facts, name) != getattr(facts, name)
    ]
    if differs:
        return StartCheck(
            False, f"the database changed since the clean stop ({', '.join(differs)})"
        )
    return StartCheck(True, f"unchanged since the clean stop ({record.proof} vouched for it)")


def proof_at_stop(full_check_passed: bool, installed_by_hash: bool) -> Proof:
    """What the record written at an orderly stop can claim: a full check passed since this
    start (or since the install); else the install's hash; else nothing (the next start checks
    fully first)."""
    if full_check_passed:
        return "full-check"
    if installed_by_hash:
        return "sha256"
    return "none"
