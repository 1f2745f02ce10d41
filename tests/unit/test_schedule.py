from watchdog.rules import schedule

HOUR = 3600.0
INTERVALS = {"hourly": HOUR, "daily": 24 * HOUR, "weekly": 7 * 24 * HOUR}


def test_a_tier_never_taken_is_due():
    assert schedule.due_tiers(1e6, {}, INTERVALS) == ["hourly", "daily", "weekly"]


def test_due_from_the_age_of_the_newest_backup():
    now = 1e6
    newest = {"hourly": now - HOUR + 1, "daily": now - 24 * HOUR, "weekly": now - HOUR}
    assert schedule.due_tiers(now, newest, INTERVALS) == ["daily"]


def test_restarts_do_not_skip_or_repeat_a_backup():
    """No timer: each start asks the catalogue, so a restart every 10 minutes still backs up hourly."""
    taken: list[float] = []
    for start in range(0, 6 * 3600, 600):  # a restart every 10 min for 6 hours
        newest = {"hourly": taken[-1] if taken else None}
        if schedule.due_tiers(float(start), newest, {"hourly": HOUR}):
            taken.append(float(start))
    assert taken == [0.0, 3600.0, 7200.0, 10800.0, 14400.0, 18000.0]


def test_clock_jumping_forward_makes_tiers_due_at_once():
    newest = {"hourly": 1e6, "daily": 1e6, "weekly": 1e6}
    assert schedule.due_tiers(1e6 + 8 * 24 * HOUR, newest, INTERVALS) == [
        "hourly",
        "daily",
        "weekly",
    ]


def test_clock_jumping_back_does_not_stall_backups():
    newest = {"hourly": 1e6 + 24 * HOUR}  # taken "tomorrow": the clock went back a day
    assert schedule.due_tiers(1e6, newest, {"hourly": HOUR}) == ["hourly"]
    assert schedule.due_tiers(1e6, {"hourly": 1e6 + 60}, {"hourly": HOUR}) == []


def test_overdue_is_twice_the_interval():
    now = 1e6
    newest = {"hourly": now - 2 * HOUR - 1, "daily": now - 30 * HOUR}
    assert schedule.overdue_tiers(now, newest, INTERVALS, watching_since=now - 1000) == ["hourly"]
    assert schedule.overdue_tiers(now, {}, INTERVALS, watching_since=now - 3 * HOUR) == ["hourly"]


def test_deploy_snapshot_only_when_the_version_changes():
    assert schedule.deploy_snapshot_needed("abc", None)
    assert schedule.deploy_snapshot_needed("def", "abc")
    assert not schedule.deploy_snapshot_needed("abc", "abc")


def test_shutdown_snapshot_fits_the_budget():
    mb = 1_048_576
    assert schedule.shutdown_snapshot_fits(10, 50 * mb, 100 * mb)
    assert not schedule.shutdown_snapshot_fits(10, 2000 * mb, 100 * mb)


def test_room_for_backup():
    assert schedule.room_for_backup(free_bytes=100, expected_bytes=50, margin_bytes=20) == 0
    assert schedule.room_for_backup(free_bytes=60, expected_bytes=50, margin_bytes=20) == 10


def test_a_backup_stamped_in_the_future_does_not_count_as_the_newest():
    now = 1e6
    backups = [("hourly", now + 86400), ("hourly", now - 7200)]
    assert schedule.newest_trusted(now, backups, {"hourly": HOUR}) == {"hourly": now - 7200}
    # Once one is taken now, the tier rests: no backup storm while the clock is behind.
    backups.append(("hourly", now))
    newest = schedule.newest_trusted(now + 5, backups, {"hourly": HOUR})
    assert schedule.due_tiers(now + 5, newest, {"hourly": HOUR}) == []


def test_offsite_is_due_when_never_pushed_or_older_than_the_interval():
    assert schedule.offsite_due(1000.0, None, 86400)
    assert not schedule.offsite_due(1000.0, 900.0, 86400)
    assert schedule.offsite_due(100_000.0, 10_000.0, 86400)
    assert schedule.offsite_due(100_000.0, 100_000.0 + 10 * 86400, 86400)  # the clock went back


def test_a_drill_is_due_daily_and_after_the_clock_went_back():
    assert schedule.drill_due(1000.0, None)
    assert not schedule.drill_due(90_000.0, 10_000.0)
    assert schedule.drill_due(100_000.0, 10_000.0)
    assert schedule.drill_due(100_000.0, 100_000.0 + 3600)


def test_an_erasure_no_backup_holds_makes_a_backup_and_a_push_due():
    assert schedule.erasure_rows_of({"erasure_rows": "3"}) == 3
    assert schedule.erasure_rows_of({}) is None
    assert schedule.erasure_rows_of({"erasure_rows": "-1"}) is None  # untrusted: not a count
    # the record is on the disk (SQLite): never due from here
    assert not schedule.erasure_backup_due(None, None)
    assert not schedule.erasure_backup_due(0, None)
    assert schedule.erasure_backup_due(1, None)  # a backup that does not say holds none
    assert schedule.erasure_backup_due(4, 3)
    assert not schedule.erasure_backup_due(3, 3)
    assert not schedule.offsite_erasure_due(None, None)
    assert schedule.offsite_erasure_due(2, None)
    assert schedule.offsite_erasure_due(2, 1)
    assert not schedule.offsite_erasure_due(2, 2)
