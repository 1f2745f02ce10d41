"""``rules.leader``: the lock's key is fixed per database name, only the sole watchdog or the
lock's holder backs up, and a follower's /health says what it can know."""

from __future__ import annotations

import subprocess
import sys

from watchdog.rules import leader
from watchdog.rules.health import Thresholds, assess
from watchdog.rules.leader import LeaderState, Role
from watchdog.rules.state import BackupSummary, Integrity, WatchdogState


def test_the_key_is_a_signed_bigint_fixed_per_database_name_across_processes():
    key = leader.lock_key("erixcast")
    assert -(2**63) <= key < 2**63
    assert key == leader.lock_key("erixcast") != leader.lock_key("erixcast2")
    other = subprocess.run(
        [sys.executable, "-c", "from watchdog.rules import leader; print(leader.lock_key('erixcast'))"],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    assert int(other.stdout) == key
    high, low = leader.split_key(key)
    assert 0 <= high < 2**32 and 0 <= low < 2**32
    assert ((high << 32) | low) == key & (2**64 - 1)


def test_only_the_sole_watchdog_or_the_holder_backs_up():
    assert leader.may_back_up(Role.SOLE) and leader.may_back_up(Role.LEADER)
    assert not leader.may_back_up(Role.FOLLOWER) and not leader.may_back_up(Role.UNKNOWN)
    assert leader.role_after_try(True) is Role.LEADER
    assert leader.role_after_try(False) is Role.FOLLOWER
    assert leader.role_after_try(None) is Role.UNKNOWN
    assert leader.next_try_in(Role.FOLLOWER, 0) == leader.TRY_EVERY
    assert leader.next_try_in(Role.UNKNOWN, 1) == leader.RECONNECT_FIRST
    assert leader.next_try_in(Role.UNKNOWN, 30) == leader.RECONNECT_MAX


def state_with(role: Role, holder: str | None = None) -> WatchdogState:
    state = WatchdogState(started_at=0.0)
    state.database.integrity, state.database.checked_at = Integrity.OK, 499_000.0
    state.storage.measured_at = 499_000.0
    state.backups.intervals = {"hourly": 3600.0, "daily": 86400.0}
    state.backups.newest = {"hourly": None, "daily": None}
    state.leader = LeaderState(role=role, holder=holder, detail="the server is unreachable")
    return state


def test_a_follower_is_not_overdue_and_says_who_backs_up():
    limits = Thresholds(80, 95, 60, 900)
    now = 500_000.0  # far past twice every interval since the start
    sole = assess(state_with(Role.SOLE), limits, now).document
    assert sole["backups"]["overdue"] == ["hourly", "daily"]
    assert sole["checks"]["backups"]["status"] == "degraded"
    assert sole["backups"]["leader"]["role"] == "sole" and sole["backups"]["leader"]["backs_up"]

    follower = assess(state_with(Role.FOLLOWER, "erixcast-watchdog a pid 7"), limits, now).document
    assert follower["backups"]["overdue"] == []
    check = follower["checks"]["backups"]
    assert check["status"] == "healthy"
    assert "taken by another instance" in check["detail"] and "pid 7" in check["detail"]
    assert follower["backups"]["leader"] == {
        "role": "follower", "backs_up": False, "since": None, "holder": "erixcast-watchdog a pid 7"
    }  # fmt: skip

    unknown = state_with(Role.UNKNOWN)
    unknown.backups.newest["hourly"] = BackupSummary("h1", "hourly", 1.0, 10, 10)
    unknown.backups.count = 1
    document = assess(unknown, limits, now).document
    assert document["backups"]["overdue"] == []
    check = document["checks"]["backups"]
    assert check["status"] == "degraded" and "unreachable" in check["detail"]
    assert "1 of this instance's own" in check["detail"]
