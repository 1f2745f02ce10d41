"""Is the service healthy? A plain function of the cached state and the clock.

Status is the worst of the individual checks. The HTTP code is 503 only when restarting the
service would fix what is wrong (the supervision loop itself is stuck or dead); everything else is
reported with 200, since Render restarting us in a loop would not mend a corrupt file or a bad
token and would only hide the report.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from conf.units import MIB, is_moment
from watchdog.rules import leader, restarts, schedule
from watchdog.rules.state import BotPhase, Integrity, WatchdogState

HEALTHY, DEGRADED, UNHEALTHY = "healthy", "degraded", "unhealthy"
_RANK = {HEALTHY: 0, DEGRADED: 1, UNHEALTHY: 2}


@dataclass(frozen=True)
class Thresholds:
    disk_warn_percent: float
    disk_critical_percent: float
    heartbeat_timeout: float
    integrity_check_every: float
    offsite_every: float = 86400.0
    journal_offsite_every: float = 300.0
    loop_stall_after: float = 30.0


@dataclass(frozen=True)
class Check:
    status: str
    detail: str
    restart_would_help: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status, "detail": self.detail}


@dataclass(frozen=True)
class HealthReport:
    status: str
    http_status: int
    checks: dict[str, Check]
    document: dict[str, Any]


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None or not is_moment(timestamp):
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


def _age(now: float, timestamp: float | None) -> float | None:
    return None if timestamp is None else round(max(0.0, now - timestamp), 1)


def check_database(state: WatchdogState, limits: Thresholds, now: float) -> Check:
    db = state.database
    if db.integrity is Integrity.UNREACHABLE:
        return Check(UNHEALTHY, f"{db.detail or 'database server unreachable'}; the bot is held")
    if db.integrity is Integrity.CORRUPT:
        return Check(UNHEALTHY, f"database failed its check: {db.detail}; the bot is held")
    if db.integrity is Integrity.MISSING:
        return Check(HEALTHY, "no database yet; the bot creates it")
    if db.integrity is Integrity.UNKNOWN or db.checked_at is None:
        return Check(DEGRADED, "database not checked yet")
    overdue = now - db.checked_at > 2 * limits.integrity_check_every + 60
    if overdue:
        return Check(DEGRADED, f"last integrity check {now - db.checked_at:.0f} s ago")
    if db.full_check_owed:
        return Check(
            HEALTHY, f"full integrity_check running with the bot up ({db.full_check_owed})"
        )
    if db.server is not None:
        return Check(HEALTHY, db.detail or "server reachable")
    return Check(HEALTHY, "integrity_check ok")


def check_disk(state: WatchdogState, limits: Thresholds) -> Check:
    used = state.storage.disk_usage_percent
    if state.storage.measured_at is None:
        return Check(DEGRADED, "disk not measured yet")
    if used >= limits.disk_critical_percent:
        return Check(
            UNHEALTHY, f"disk {used:.1f}% full (critical at {limits.disk_critical_percent}%)"
        )
    if used >= limits.disk_warn_percent:
        return Check(DEGRADED, f"disk {used:.1f}% full (warning at {limits.disk_warn_percent}%)")
    return Check(HEALTHY, f"disk {used:.1f}% full")


def check_bot(state: WatchdogState, limits: Thresholds, now: float) -> Check:
    bot = state.bot
    if not bot.configured or bot.phase is BotPhase.NOT_CONFIGURED:
        return Check(DEGRADED, bot.message or "bot not configured: set TELEGRAM_BOT_TOKEN")
    if bot.phase is BotPhase.HELD:
        return Check(UNHEALTHY, bot.message or "bot held: the database is not fit to run on")
    if restarts.is_crash_loop(bot.consecutive_failures):
        return Check(
            UNHEALTHY,
            f"crash loop: {bot.consecutive_failures} short runs in a row, "
            f"last exit code {bot.last_exit_code}",
        )
    if bot.phase is BotPhase.RUNNING:
        return Check(HEALTHY, "polling")
    if bot.phase is BotPhase.STARTING:
        return Check(HEALTHY, "starting")
    if bot.phase is BotPhase.BACKOFF:
        return Check(DEGRADED, f"restarting after exit code {bot.last_exit_code}")
    return Check(DEGRADED, f"bot {bot.phase.value}")


def overdue(state: WatchdogState, now: float) -> list[str]:
    if state.database.integrity is not Integrity.OK or not leader.may_back_up(state.leader.role):
        return []  # nothing to back up (yet), or not worth it (corrupt), or not ours to back up
    newest_at = {
        tier: (summary.created_at if summary else None)
        for tier, summary in state.backups.newest.items()
    }
    return schedule.overdue_tiers(now, newest_at, state.backups.intervals, state.started_at)


def check_backups(state: WatchdogState, now: float) -> Check:
    backups = state.backups
    follower = leader.backups_check(state.leader, backups.count)
    if follower is not None:
        return Check(HEALTHY if follower[0] else DEGRADED, follower[1])
    if backups.last_error:
        return Check(DEGRADED, f"last backup failed: {backups.last_error}")
    late = overdue(state, now)
    if late:
        return Check(DEGRADED, f"overdue (more than twice the interval): {', '.join(late)}")
    if backups.last_backup_at is None:
        return Check(HEALTHY, "no backup yet")
    return Check(HEALTHY, f"{backups.count} verified backups")


FRESH_START_LOUD_FOR = 7 * 86400.0
"""How long a start on an empty database (no usable backup) keeps /health degraded."""


def check_recovery(state: WatchdogState, now: float) -> Check:
    recovery = state.recovery
    if recovery.fresh_start_at is not None and now - recovery.fresh_start_at < FRESH_START_LOUD_FOR:
        return Check(DEGRADED, recovery.fresh_start_reason or "started on a fresh database")
    replay = recovery.last_replay
    if replay is not None and replay.get("ok") is False:
        return Check(
            DEGRADED,
            f"the journal was not replayed after the last restore: {replay.get('detail')}"
            " (the bot tries again each time it starts)",
        )
    if recovery.last is not None:
        refused = len(recovery.last.get("rejected") or [])
        named = f" ({refused} refused: see recovery.last.rejected)" if refused else ""
        return Check(
            HEALTHY, f"last recovery: restored from {recovery.last['restored_from']}{named}"
        )
    return Check(HEALTHY, "no recovery needed")


def check_offsite(state: WatchdogState, offsite_every: float, now: float) -> Check:
    offsite = state.offsite
    if not offsite.enabled:
        if offsite.last_error:
            return Check(DEGRADED, f"offsite backups off: {offsite.last_error}")
        return Check(HEALTHY, "offsite backups not configured")
    if offsite.failures:
        return Check(
            DEGRADED, f"{offsite.failures} failed pushes in a row; last: {offsite.last_error}"
        )
    if offsite.newest_at is not None and now - offsite.newest_at > 2 * offsite_every:
        return Check(DEGRADED, f"newest offsite backup is {now - offsite.newest_at:.0f} s old")
    if offsite.refused:
        names = ", ".join(f"{r['id']} ({r['kind']})" for r in offsite.refused)
        return Check(DEGRADED, f"packages on the branch refused, kept untouched: {names}")
    if offsite.rotation_held_since is not None:
        return Check(
            DEGRADED,
            "after a fresh start every older package stays on the branch (no rotation) until "
            "`python -m watchdog offsite-release`",
        )
    return Check(HEALTHY, f"newest offsite backup {offsite.newest_id or 'pending'}")


BOUND_PRUNE_LOUD_FOR = 7 * 86400.0
"""How long a removal past JOURNAL_MAX_MB keeps /health degraded."""


def check_journal(state: WatchdogState, journal_offsite_every: float, now: float) -> Check:
    journal = state.journal
    if journal.bound_pruned_at is not None and now - journal.bound_pruned_at < BOUND_PRUNE_LOUD_FOR:
        return Check(DEGRADED, journal.bound_message or "journal segments removed past its bound")
    if journal.problems:
        return Check(DEGRADED, f"journal: {'; '.join(journal.problems[:3])}")
    if journal.offsite_enabled:
        if journal.push_failures:
            return Check(
                DEGRADED,
                f"{journal.push_failures} failed journal pushes in a row; last: "
                f"{journal.last_push_error}",
            )
        behind = (
            journal.newest_at is not None
            and journal.newest_at > (journal.pushed_newest_at or 0.0)
            and now - journal.newest_at > 2 * journal_offsite_every + 60
        )
        if behind:
            return Check(
                DEGRADED, "journal lines older than twice JOURNAL_OFFSITE_EVERY not offsite"
            )
    if journal.measured_at is None:
        return Check(HEALTHY, "journal not read yet")
    return Check(HEALTHY, f"journal: {journal.segments} segments, {journal.bytes / MIB:.1f} MB")


def journal_document(state: WatchdogState, now: float) -> dict[str, Any]:
    journal = state.journal
    return {
        "bytes": journal.bytes,
        "segments": journal.segments,
        "oldest_entry": _iso(journal.oldest_at),
        "newest_entry": _iso(journal.newest_at),
        "covered_until": _iso(journal.covered_until),
        "problems": list(journal.problems),
        "pruned": journal.pruned,
        "size_bound": {
            "pruned": journal.bound_pruned,
            "last_at": _iso(journal.bound_pruned_at),
            "message": journal.bound_message,
        },
        "offsite": {
            "enabled": journal.offsite_enabled,
            "last_push": _iso(journal.last_push_at),
            "age_s": _age(now, journal.last_push_at),
            "pushed_through": _iso(journal.pushed_newest_at),
            "failures": journal.push_failures,
            "last_error": journal.last_push_error,
            "next_try": _iso(journal.next_push_at),
        },
        "last_restore": (state.recovery.last or {}).get("journal"),
    }


def check_drill(state: WatchdogState) -> Check:
    failed = state.drill.failed
    if failed:
        names = ", ".join(f"{r['tier']} {r['id']}: {r['detail']}" for r in failed)
        return Check(DEGRADED, f"restore drill failed: {names}")
    if state.drill.last_at is None:
        return Check(HEALTHY, "no restore drill yet")
    return Check(HEALTHY, f"restore drill passed for {len(state.drill.results)} tiers")


def check_files(state: WatchdogState) -> Check:
    """Files set aside: counted by kind here (no paths on a public endpoint); /stats lists them."""
    if not state.files_set_aside:
        return Check(HEALTHY, "every file in DATA_DIR read back as expected")
    kinds: dict[str, int] = {}
    for text in state.files_set_aside.values():
        kind = text.split(":", 1)[0]
        kinds[kind] = kinds.get(kind, 0) + 1
    listed = ", ".join(f"{count} {kind}" for kind, count in sorted(kinds.items()))
    return Check(DEGRADED, f"files set aside, not trusted (see the log or /stats): {listed}")


def check_supervision(state: WatchdogState, limits: Thresholds, now: float) -> Check:
    if state.loop_error:
        return Check(UNHEALTHY, f"supervision loop failed: {state.loop_error}", True)
    tick_age = _age(now, state.loop_tick)
    if tick_age is None:
        return Check(HEALTHY, "starting")
    if tick_age > limits.loop_stall_after:
        return Check(UNHEALTHY, f"supervision loop silent for {tick_age:.0f} s", True)
    return Check(HEALTHY, "ticking")


def assess(state: WatchdogState, limits: Thresholds, now: float) -> HealthReport:
    checks = {
        "database": check_database(state, limits, now),
        "disk": check_disk(state, limits),
        "bot": check_bot(state, limits, now),
        "backups": check_backups(state, now),
        "recovery": check_recovery(state, now),
        "offsite": check_offsite(state, limits.offsite_every, now),
        "drill": check_drill(state),
        "journal": check_journal(state, limits.journal_offsite_every, now),
        "files": check_files(state),
        "supervision": check_supervision(state, limits, now),
    }
    status = max((check.status for check in checks.values()), key=_RANK.__getitem__)
    restart_helps = any(check.restart_would_help for check in checks.values())
    bot, db, storage = state.bot, state.database, state.storage
    document: dict[str, Any] = {
        "status": status,
        "time": _iso(now),
        "uptime_s": _age(now, state.started_at),
        "database": {
            "type": db.kind,
            "size_mb": round(db.size_bytes / MIB, 3),
            "integrity": db.integrity.value,
            "last_backup": _iso(state.backups.last_backup_at),
            "records": db.records,
            "checked_at": _iso(db.checked_at),
            **({"server": dict(db.server)} if db.server is not None else {}),
        },
        "storage": {
            "disk_usage_percent": round(storage.disk_usage_percent, 1),
            "persistent_disk": storage.persistent_disk,
            "free_mb": round(storage.free_bytes / MIB, 1),
            "journal_mb": round(state.journal.bytes / MIB, 3),
        },
        "bot": {
            "status": bot.phase.value,
            "configured": bot.configured,
            "pid": bot.pid,
            "restarts": bot.restarts,
            "consecutive_failures": bot.consecutive_failures,
            "crash_loop": restarts.is_crash_loop(bot.consecutive_failures),
            "last_exit_code": bot.last_exit_code,
            "heartbeat_age_s": _age(now, bot.last_heartbeat),
            "next_restart_in_s": (
                round(max(0.0, bot.next_launch_at - now), 1)
                if bot.next_launch_at is not None and bot.phase is BotPhase.BACKOFF
                else None
            ),
        },
        "backups": {
            "tiers": {
                tier: (
                    {
                        "id": summary.id,
                        "age_s": _age(now, summary.created_at),
                        "size_mb": round(summary.size_bytes / MIB, 3),
                    }
                    if summary
                    else None
                )
                for tier, summary in state.backups.newest.items()
            },
            "count": state.backups.count,
            "overdue": overdue(state, now),
            "last_error": state.backups.last_error,
            "offsite": {
                "enabled": state.offsite.enabled,
                "newest_id": state.offsite.newest_id,
                "age_s": _age(now, state.offsite.newest_at),
                "last_success": _iso(state.offsite.last_success_at),
                "failures": state.offsite.failures,
                "last_error": state.offsite.last_error,
                "rotation_held_since": _iso(state.offsite.rotation_held_since),
                "refused": [
                    {"id": r.get("id"), "kind": r.get("kind")} for r in state.offsite.refused
                ],
            },
            "leader": {
                "role": state.leader.role.value,
                "backs_up": leader.may_back_up(state.leader.role),
                "since": _iso(state.leader.since),
                "holder": state.leader.holder,
            },
            "drill": {
                "last_at": _iso(state.drill.last_at),
                "ok": not state.drill.failed if state.drill.last_at else None,
            },
        },
        "journal": journal_document(state, now),
        "recovery": {
            "count": state.recovery.count,
            "last_at": _iso(state.recovery.last_at),
            "last": state.recovery.last,
            "last_replay": (
                {**state.recovery.last_replay, "at": _iso(state.recovery.last_replay.get("at"))}
                if state.recovery.last_replay
                else None
            ),
            "fresh_start_at": _iso(state.recovery.fresh_start_at),
        },
        "checks": {name: check.as_dict() for name, check in checks.items()},
    }
    return HealthReport(
        status=status,
        http_status=503 if restart_helps else 200,
        checks=checks,
        document=document,
    )
