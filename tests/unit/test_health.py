from watchdog.rules.health import Thresholds, assess
from watchdog.rules.state import BotPhase, Integrity, WatchdogState

LIMITS = Thresholds(
    disk_warn_percent=80, disk_critical_percent=95, heartbeat_timeout=60, integrity_check_every=900
)
NOW = 10_000.0


def good_state() -> WatchdogState:
    state = WatchdogState(started_at=NOW - 100)
    state.loop_tick = NOW - 1
    state.storage.measured_at = NOW - 2
    state.storage.disk_usage_percent = 40
    state.storage.persistent_disk = True
    state.database.integrity = Integrity.OK
    state.database.checked_at = NOW - 60
    state.database.tables = {"users": 3, "messages": 10}
    state.database.size_bytes = 2 * 1_048_576
    state.bot.phase = BotPhase.RUNNING
    state.bot.pid = 42
    state.bot.launches = 1
    state.bot.last_heartbeat = NOW - 5
    return state


def test_all_good_is_healthy_with_the_fields_operators_know():
    report = assess(good_state(), LIMITS, NOW)
    assert (report.status, report.http_status) == ("healthy", 200)
    doc = report.document
    assert doc["status"] == "healthy"
    assert set(doc["database"]) >= {"type", "size_mb", "integrity", "last_backup", "records"}
    assert doc["database"]["type"] == "sqlite"
    assert doc["database"]["records"] == 13
    assert doc["database"]["size_mb"] == 2.0
    assert set(doc["storage"]) >= {"disk_usage_percent", "persistent_disk"}
    assert {"bot", "backups", "checks"} <= set(doc)
    assert doc["bot"]["heartbeat_age_s"] == 5


def test_corrupt_database_is_unhealthy_but_a_restart_would_not_help():
    state = good_state()
    state.database.integrity = Integrity.CORRUPT
    state.database.detail = "integrity_check: page 3 broken"
    state.bot.phase = BotPhase.HELD
    report = assess(state, LIMITS, NOW)
    assert report.status == "unhealthy"
    assert report.http_status == 200
    assert "page 3" in report.checks["database"].detail


def test_not_configured_is_degraded():
    state = good_state()
    state.bot.phase = BotPhase.NOT_CONFIGURED
    state.bot.configured = False
    report = assess(state, LIMITS, NOW)
    assert report.status == "degraded"
    assert report.checks["bot"].status == "degraded"


def test_crash_loop_is_visible():
    state = good_state()
    state.bot.phase = BotPhase.BACKOFF
    state.bot.consecutive_failures = 4
    state.bot.last_exit_code = 1
    report = assess(state, LIMITS, NOW)
    assert report.status == "unhealthy"
    assert report.document["bot"]["crash_loop"] is True
    assert "crash loop" in report.checks["bot"].detail


def test_one_restart_is_only_degraded():
    state = good_state()
    state.bot.phase = BotPhase.BACKOFF
    state.bot.consecutive_failures = 1
    state.bot.next_launch_at = NOW + 0.5
    report = assess(state, LIMITS, NOW)
    assert report.status == "degraded"
    assert report.document["bot"]["next_restart_in_s"] == 0.5


def test_disk_thresholds():
    state = good_state()
    state.storage.disk_usage_percent = 85
    assert assess(state, LIMITS, NOW).status == "degraded"
    state.storage.disk_usage_percent = 96
    assert assess(state, LIMITS, NOW).status == "unhealthy"


def test_overdue_integrity_check_degrades():
    state = good_state()
    state.database.checked_at = NOW - 3 * 900
    assert assess(state, LIMITS, NOW).checks["database"].status == "degraded"


def test_a_stuck_supervision_loop_asks_for_a_restart():
    state = good_state()
    state.loop_tick = NOW - 120
    report = assess(state, LIMITS, NOW)
    assert (report.status, report.http_status) == ("unhealthy", 503)


def test_a_dead_supervision_loop_asks_for_a_restart():
    state = good_state()
    state.loop_error = "supervise: RuntimeError: boom"
    assert assess(state, LIMITS, NOW).http_status == 503


def with_backups(state: WatchdogState, ages: dict[str, float]) -> WatchdogState:
    from watchdog.rules.state import BackupSummary

    state.backups.intervals = {"hourly": 3600, "daily": 86400, "weekly": 604800}
    state.backups.newest = {
        tier: BackupSummary(f"id-{tier}", tier, NOW - age, 1_048_576, 1_048_576)
        for tier, age in ages.items()
    }
    state.backups.count = len(ages)
    return state


def test_backups_are_reported_per_tier_with_the_newest_as_last_backup():
    state = with_backups(good_state(), {"hourly": 600, "daily": 7200, "weekly": 86400})
    report = assess(state, LIMITS, NOW)
    assert report.status == "healthy"
    assert report.document["backups"]["tiers"]["hourly"]["age_s"] == 600
    assert report.document["database"]["last_backup"] == "1970-01-01T02:36:40+00:00"


def test_a_tier_twice_overdue_degrades():
    state = with_backups(good_state(), {"hourly": 2 * 3600 + 5, "daily": 7200, "weekly": 86400})
    state.started_at = NOW - 10 * 86400
    report = assess(state, LIMITS, NOW)
    assert report.status == "degraded"
    assert report.document["backups"]["overdue"] == ["hourly"]
    assert "hourly" in report.checks["backups"].detail


def test_a_failed_backup_degrades_with_its_reason():
    state = with_backups(good_state(), {"hourly": 60, "daily": 60, "weekly": 60})
    state.backups.last_error = "hourly: not enough disk for a hourly backup: 3.0 MB short"
    report = assess(state, LIMITS, NOW)
    assert report.status == "degraded"
    assert "not enough disk" in report.checks["backups"].detail


def test_a_rotation_hold_after_a_fresh_start_is_said_in_health():
    state = good_state()
    state.offsite.enabled = True
    state.offsite.newest_id, state.offsite.newest_at = "b1", NOW - 60
    state.offsite.rotation_held_since = NOW - 3600
    doc = assess(state, LIMITS, NOW).document
    assert doc["checks"]["offsite"]["status"] == "degraded"
    assert "offsite-release" in doc["checks"]["offsite"]["detail"]
    assert doc["backups"]["offsite"]["rotation_held_since"] is not None


def test_refused_packages_on_the_branch_are_said_in_health_by_id_and_kind():
    state = good_state()
    state.offsite.enabled = True
    state.offsite.newest_id, state.offsite.newest_at = "b1", NOW - 60
    state.offsite.refused = [{"id": "evil", "commit": "c" * 40, "kind": "forged", "reason": "x"}]
    doc = assess(state, LIMITS, NOW).document
    assert doc["checks"]["offsite"]["status"] == "degraded"
    assert "evil (forged)" in doc["checks"]["offsite"]["detail"]
    assert doc["backups"]["offsite"]["refused"] == [{"id": "evil", "kind": "forged"}]


def test_a_time_no_date_can_show_never_breaks_health():
    state = good_state()
    state.recovery.fresh_start_at = 1e300
    state.drill.last_at = float("inf")
    doc = assess(state, LIMITS, NOW).document
    assert doc["status"] in ("healthy", "degraded", "unhealthy")


def test_a_replay_that_failed_after_a_restore_degrades_and_one_that_worked_is_shown():
    state = good_state()
    state.recovery.last_replay = {"at": NOW - 30, "ok": False, "detail": "it exited with code 65"}
    report = assess(state, LIMITS, NOW)
    assert report.status == "degraded"
    assert "journal was not replayed" in report.checks["recovery"].detail
    assert "code 65" in report.checks["recovery"].detail
    state.recovery.last_replay = {"at": NOW - 30, "ok": True, "detail": "", "replayed": 12}
    report = assess(state, LIMITS, NOW)
    assert report.status == "healthy"
    assert report.document["recovery"]["last_replay"]["replayed"] == 12
    assert report.document["recovery"]["last_replay"]["at"].startswith("1970-01-01T02:46")
