"""Which watchdog backs up a database that several share, as plain functions and data.

N instances of the stack on one PostgreSQL database would each dump it, drill it and push to
the same offsite branch (concurrent pushes, rotations undoing each other). One of them leads:
the one holding a session-level advisory lock on the server, on a key derived from the
database's name (:func:`lock_key`), on a connection of its own for as long as it runs. A lost
connection is lost leadership; the lock is tried again every :data:`TRY_EVERY`. The lock is
the server's, so a leader that dies — its connection closed by its kernel, or dropped by the
server's TCP keepalive — lets another take over within seconds.

A SQLite file has one watchdog by construction (the single-instance lock in DATA_DIR): it is
``sole`` and always backs up. The effect is ``data.leader_lock``; the loop ``runtime.leadership``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum

from watchdog.rules import backoff

TRY_EVERY = 5.0
"""Seconds between a follower's tries of the lock, and between a leader's pings of its
connection (the longest a takeover waits once the old leader's session is gone)."""
RECONNECT_FIRST, RECONNECT_MAX = 2.0, 60.0
"""The one backoff between attempts to open the lock's connection after a failure."""
KEY_PREFIX = b"erixcast backup leader\0"


class Role(StrEnum):
    SOLE = "sole"  # a SQLite file: the only watchdog there can be
    LEADER = "leader"  # holds the lock: backs up, drills, pushes offsite
    FOLLOWER = "follower"  # another instance holds it
    UNKNOWN = "unknown"  # not known yet, or the lock's connection is lost


@dataclass
class LeaderState:
    """What /health and /metrics say of the leadership (written by ``runtime.leadership``)."""

    role: Role = Role.SOLE
    since: float | None = None
    """When this instance took the role it has (leader or follower), or lost it (unknown)."""
    detail: str = ""
    holder: str | None = None
    """A follower's view of who leads (the leader's ``application_name``), when readable."""
    changes: int = 0
    """Times this instance became leader since it started."""


def lock_key(database: str) -> int:
    """The advisory lock's key (a signed 64-bit integer, as ``pg_try_advisory_lock(bigint)``
    takes): fixed for a database name across processes, machines and versions."""
    digest = hashlib.sha256(KEY_PREFIX + database.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def split_key(key: int) -> tuple[int, int]:
    """``pg_locks``' ``classid`` and ``objid`` for a bigint key (its high and low 32 bits)."""
    unsigned = key & 0xFFFF_FFFF_FFFF_FFFF
    return unsigned >> 32, unsigned & 0xFFFF_FFFF


def may_back_up(role: Role) -> bool:
    """Am I the one to back up, drill and push offsite? Only for certain: the sole watchdog
    or the lock's holder; while it is unknown, nobody here (a duplicate push is the harm)."""
    return role in (Role.SOLE, Role.LEADER)


def role_after_try(taken: bool | None) -> Role:
    """The role after one try of the lock: ``True`` taken or still held, ``False`` held by
    another session, ``None`` the connection failed."""
    if taken is None:
        return Role.UNKNOWN
    return Role.LEADER if taken else Role.FOLLOWER


def next_try_in(role: Role, failures: int) -> float:
    """Seconds until the next try (or ping): the one backoff after connection failures."""
    if role is Role.UNKNOWN and failures:
        return backoff.delay(failures, RECONNECT_FIRST, RECONNECT_MAX)
    return TRY_EVERY


def backups_check(state: LeaderState, own_backups: int) -> tuple[bool, str] | None:
    """For /health's backups check: None when this instance backs up (the usual check
    applies), else (healthy?, the sentence). A follower's catalogue is its own DATA_DIR's, so
    it says what it can know: who leads, and the dumps it took itself while it led."""
    if may_back_up(state.role):
        return None
    own = f"; {own_backups} of this instance's own from when it led" if own_backups else ""
    if state.role is Role.FOLLOWER:
        who = f" ({state.holder})" if state.holder else ""
        return True, f"taken by another instance, the backup leader{who}{own}"
    return False, f"backup leadership unknown: {state.detail or 'not tried yet'}{own}"
