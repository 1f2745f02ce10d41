"""The runtime's decisions in motion, on a fake clock with a fake bot process: supervision,
backoff, schedules and the order of a recovery. No process is started, nothing sleeps."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest

from conf.exitcodes import EXIT_DATABASE, EXIT_NOT_CONFIGURED
from tests.fakes.bot_process import FOREVER, FakeSpawner, Script
from tests.runtime_context import runtime_context
from watchdog.data.database import DatabaseCheck
from watchdog.data.disk import DiskReading
from watchdog.data.recovery import RecoveryResult
from watchdog.data.remembered import RememberedStore
from watchdog.offsite import OffsiteError
from watchdog.rules.state import BotPhase, Integrity
from watchdog.runtime.context import RuntimeContext
from watchdog.runtime.guard import DataGuard
from watchdog.runtime.jobs import BackupJobs
from watchdog.runtime.maintenance import Maintenance
from watchdog.runtime.supervision import BotSupervisor


class FakeAlerter:
    def __init__(self) -> None:
        self.texts: list[str] = []

    async def send(self, text: str) -> int:
        self.texts.append(text)
        return 1


@pytest.fixture
def ctx(tmp_path, monkeypatch) -> RuntimeContext:
    env = {
        "TELEGRAM_BOT_TOKEN": "1:x",
        "BOT_HEARTBEAT_TIMEOUT": "30",
        "BOT_RESTART_BACKOFF_MAX": "8",
    }
    made = runtime_context(monkeypatch, tmp_path / "data", env=env, alerter=FakeAlerter())
    made.state.database.integrity = Integrity.OK
    return made


def supervisor_with(ctx: RuntimeContext, scripts: list[Script], launches: int) -> FakeSpawner:
    """A supervisor whose bot runs the scripts; the scenario ends at the launch after ``launches``."""
    spawner = FakeSpawner(ctx.clock, scripts)  # type: ignore[arg-type]

    def stop_after(number: int) -> None:
        if number > launches:
            ctx.stopping.set()

    spawner.after_launch = stop_after
    return spawner


def run(coroutine, timeout: float = 10.0):
    return asyncio.run(asyncio.wait_for(coroutine, timeout))


def make_supervisor(ctx: RuntimeContext, spawner: FakeSpawner) -> BotSupervisor:
    bot = BotSupervisor(ctx, ["bot"])
    bot.spawn = spawner
    bot.read_heartbeat = ctx.clock.time  # a bot that polls all the time
    return bot


# -- supervision ------------------------------------------------------------------------------


def test_a_bot_that_cannot_be_launched_is_tried_again_and_supervision_goes_on(ctx):
    full = OSError(28, "No space left on device")
    scripts = [Script(launch_error=full), Script(launch_error=full), Script(lasts=FOREVER)]
    spawner = supervisor_with(ctx, scripts, launches=2)
    bot = make_supervisor(ctx, spawner)
    run(bot.run())
    assert spawner.log[:3] == ["cannot start 1", "cannot start 2", "start 3"]
    assert spawner.launched_at[1] - spawner.launched_at[0] > 0, "backed off, not a busy loop"
    failures = [e.message for e in ctx.state.events if "could not be launched" in e.message]
    assert len(failures) == 2 and "No space left" in failures[0]
    assert ctx.state.loop_error is None


def test_a_crashing_bot_is_relaunched_with_growing_capped_delays_and_a_crash_loop(ctx):
    spawner = supervisor_with(ctx, [Script(lasts=0.2, code=1)], launches=6)
    bot = make_supervisor(ctx, spawner)
    run(bot.run())
    gaps = [b - a for a, b in zip(spawner.launched_at, spawner.launched_at[1:], strict=False)]
    waits = [round(gap - 0.2, 3) for gap in gaps]  # each run lasted 0.2 s, then the backoff
    assert waits == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]  # BOT_RESTART_BACKOFF_MAX=8
    state = ctx.state.bot
    assert state.consecutive_failures == 6 and state.last_exit_code == 1
    assert state.launches == 7 and state.restarts == 6
    assert any("(crash loop)" in e.message for e in ctx.state.events)


def test_a_run_that_lasted_a_minute_starts_the_backoff_over(ctx):
    scripts = [Script(lasts=0.1), Script(lasts=0.1), Script(lasts=0.1), Script(lasts=120.0)]
    spawner = supervisor_with(ctx, scripts, launches=4)
    bot = make_supervisor(ctx, spawner)
    run(bot.run())
    assert ctx.state.bot.consecutive_failures == 1
    after_long_run = spawner.launched_at[4] - spawner.launched_at[3] - 120.0
    assert after_long_run == pytest.approx(0.5)  # the first delay again, not the fourth


def test_a_relaunched_bot_that_keeps_running_leaves_the_crash_loop_without_exiting(ctx):
    scripts = [Script(lasts=0.1)] * 4 + [Script(lasts=FOREVER)]
    spawner = supervisor_with(ctx, scripts, launches=5)
    bot = make_supervisor(ctx, spawner)
    seen: list[int] = []

    async def scenario() -> None:
        task = asyncio.create_task(bot.run())
        while len(spawner.runs) < 5:
            await asyncio.sleep(0)
        seen.append(ctx.state.bot.consecutive_failures)  # in a crash loop when the fifth starts
        while ctx.clock.monotonic() - spawner.launched_at[4] < 61:
            await asyncio.sleep(0)
        seen.append(ctx.state.bot.consecutive_failures)
        ctx.stopping.set()
        await task

    run(scenario())
    assert seen == [4, 0]


def test_a_silent_bot_is_stopped_after_the_heartbeat_timeout(ctx):
    spawner = supervisor_with(ctx, [Script(lasts=FOREVER)], launches=1)
    bot = make_supervisor(ctx, spawner)
    bot.read_heartbeat = lambda: None
    run(bot.run())
    first = spawner.runs[0]
    assert first.stopped
    assert "stop 1" in spawner.log
    assert ctx.state.bot.last_exit_reason.startswith("silent for 3")  # HEARTBEAT_TIMEOUT 30 s
    assert 30.0 <= spawner.launched_at[1] - spawner.launched_at[0] <= 31.5


def test_a_bot_that_polls_becomes_running(ctx):
    spawner = supervisor_with(ctx, [Script(lasts=5.0, code=0)], launches=1)
    bot = make_supervisor(ctx, spawner)
    phases = []

    async def scenario() -> None:
        task = asyncio.create_task(bot.run())
        for _ in range(200):
            phases.append(ctx.state.bot.phase)
            await asyncio.sleep(0)
            if task.done():
                break
        await task

    run(scenario())
    assert BotPhase.RUNNING in phases


def test_not_configured_is_not_relaunched(ctx):
    spawner = supervisor_with(ctx, [Script(lasts=0.1, code=EXIT_NOT_CONFIGURED)], launches=5)
    bot = make_supervisor(ctx, spawner)

    async def scenario() -> None:
        task = asyncio.create_task(bot.run())
        for _ in range(50):
            await ctx.sleep(1.0)  # an hour of fake time passes
        ctx.stopping.set()
        await task

    run(scenario())
    assert len(spawner.runs) == 1
    assert ctx.state.bot.phase is BotPhase.NOT_CONFIGURED
    assert ctx.state.bot.configured is False


def test_a_database_exit_checks_the_data_before_the_backoff_and_the_snapshot(ctx):
    spawner = supervisor_with(ctx, [Script(lasts=0.1, code=EXIT_DATABASE)], launches=1)
    bot = make_supervisor(ctx, spawner)
    order: list[str] = []

    async def database_exit() -> None:
        order.append("check")

    async def before_relaunch(reason: str) -> None:
        order.append(f"snapshot: {reason}")

    bot.on_database_exit = database_exit
    bot.before_relaunch = before_relaunch
    run(bot.run())
    assert order == ["check", f"snapshot: bot exited with code {EXIT_DATABASE}"]


def test_a_held_bot_is_stopped_kept_down_and_launched_when_released(ctx):
    spawner = supervisor_with(ctx, [Script(lasts=FOREVER), Script(lasts=0.1)], launches=2)
    bot = make_supervisor(ctx, spawner)

    async def scenario() -> None:
        task = asyncio.create_task(bot.run())
        while not spawner.runs:
            await asyncio.sleep(0)
        async with bot.held("restoring"):
            assert spawner.runs[0].stopped
            for _ in range(20):
                await ctx.sleep(1.0)
            assert len(spawner.runs) == 1, "nothing launched while held"
            assert ctx.state.bot.phase is BotPhase.HELD
        await asyncio.wait_for(task, 5)

    run(scenario())
    assert len(spawner.runs) == 3  # relaunched after the hold (the third launch ends the test)


def test_a_corrupt_database_keeps_the_bot_down(ctx):
    ctx.state.database.integrity = Integrity.CORRUPT
    spawner = supervisor_with(ctx, [Script()], launches=1)
    bot = make_supervisor(ctx, spawner)

    async def scenario() -> None:
        task = asyncio.create_task(bot.run())
        for _ in range(10):
            await ctx.sleep(1.0)
        ctx.stopping.set()
        await task

    run(scenario())
    assert spawner.runs == []
    assert ctx.state.bot.message == "bot held: database corrupt"


# -- backups: schedules and backoff -----------------------------------------------------------


class FailingKeeper:
    """A keeper whose every backup fails (a full disk), and that has no backups."""

    def __init__(self) -> None:
        self.taken: list[tuple[str, float]] = []

        class Catalogue:
            def scan(self) -> list:
                return []

            def newest_by_tier(self, backups) -> dict:
                return {}

        self.catalogue = Catalogue()

    def staged(self) -> list:
        return []

    def take(self, tier: str, reason: str, now: float, **_: object):
        self.taken.append((tier, now))
        raise OSError(28, "No space left on device")


def test_every_tier_is_due_at_first_and_a_failed_tier_waits_with_the_backoff(ctx):
    keeper = FailingKeeper()
    jobs = BackupJobs(ctx, keeper)  # type: ignore[arg-type]
    start = ctx.clock.time()

    async def round_at(offset: float) -> None:
        ctx.clock.now = start + offset
        await jobs.scheduled()

    async def scenario() -> None:
        await round_at(0)
        await round_at(30)  # inside the first wait (60 s): nothing tried
        await round_at(60)
        await round_at(150)  # inside the second wait (120 s after 60)
        await round_at(180)

    run(scenario())
    hourly = [now - start for tier, now in keeper.taken if tier == "hourly"]
    assert hourly == [0, 60, 180]
    assert {tier for tier, _ in keeper.taken} == {"hourly", "daily", "weekly"}
    assert ctx.state.backups.last_error.startswith("weekly: ")


def test_no_scheduled_backup_of_a_database_that_is_not_ok(ctx):
    ctx.state.database.integrity = Integrity.CORRUPT
    keeper = FailingKeeper()
    run(BackupJobs(ctx, keeper).scheduled())  # type: ignore[arg-type]
    assert keeper.taken == []


class OneBackup:
    created_at = 1_800_000_000.0 - 10
    id = "b1"

    class manifest:
        size_bytes = 1


class FlakyStore:
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.pushed: list[float] = []

    def push(self, backup):
        if self.failures > 0:
            self.failures -= 1
            raise OffsiteError("server down", "unreachable")

        class Entry:
            id, created_at, parts = backup.id, backup.created_at, 1

        return Entry()


class Catalogue:
    def scan(self):
        return [OneBackup()]


def test_offsite_failures_back_off_alert_once_and_recover(ctx):
    store = FlakyStore(failures=3)
    maintenance = Maintenance(ctx, Catalogue(), store)  # type: ignore[arg-type]
    start = ctx.clock.time()
    tried_at: list[float] = []
    original = store.push

    def push(backup):
        tried_at.append(ctx.clock.time() - start)
        return original(backup)

    store.push = push  # type: ignore[method-assign]

    async def scenario() -> None:
        for offset in range(0, 600, 5):
            ctx.clock.now = start + offset
            await maintenance.push_offsite_if_due()
        await asyncio.sleep(0)

    run(scenario())
    assert tried_at == [0, 60, 180, 420]  # 60, 120, 240 s between tries
    alerts = ctx.events.alerter.texts  # type: ignore[union-attr]
    assert len(alerts) == 1 and "3 times" in alerts[0]
    assert ctx.state.offsite.failures == 0 and ctx.state.offsite.newest_id == "b1"
    assert ctx.remembered.load().offsite_id == "b1"


# -- recovery: the order of one heal ------------------------------------------------------------


def test_a_heal_stops_the_bot_recovers_reports_then_lets_it_relaunch(ctx):
    report = json.dumps({"replayed": 3, "erasures": 1, "problems": [], "seconds": 0.2})
    scripts = [Script(lasts=FOREVER), Script(writes=(ctx.layout.replay_report, report))]
    spawner = supervisor_with(ctx, scripts, launches=1)
    bot = make_supervisor(ctx, spawner)
    order: list[str] = []

    class Jobs:
        async def refresh(self) -> None:
            order.append("refresh")

    guard = DataGuard(ctx, bot, Jobs(), None)  # type: ignore[arg-type]
    ctx.remembered.update(database_seen=True)
    guard.check_file = lambda path: DatabaseCheck("corrupt", "bad header", 4096)
    guard.count_tables = lambda path: {"users": 3}
    guard.read_disk = lambda path: DiskReading(str(path), 10.0, 1 << 30, 1 << 31, "/", True)

    def recover(layout, reason, detail, now, offsite, trust_hash=True):
        assert spawner.runs[0].stopped, "the bot is stopped before the files are touched"
        assert not bot.launchable(), "and held while they are"
        order.append(f"recover: {reason}")
        return RecoveryResult(reason=reason, restored_from="b1", source="local")

    guard.recover_files = recover

    async def scenario() -> None:
        task = asyncio.create_task(bot.run())
        while not spawner.runs:
            await asyncio.sleep(0)
        await guard.check_and_heal()
        order.append("healed")
        await asyncio.wait_for(task, 5)

    run(scenario())
    assert order == ["recover: bad header", "refresh", "healed"]
    assert spawner.argvs == [["bot"], ["bot"]], "no replay process: the bot replays as it starts"
    assert ctx.state.recovery.last["replay"]["replayed"] == 3
    assert ctx.state.recovery.last_replay["erasures"] == 1
    assert not ctx.layout.replay_report.exists(), "the report is read once"
    assert len(spawner.runs) == 2, "relaunched on the restored database"
    assert ctx.state.database.integrity is Integrity.OK
    assert ctx.state.recovery.count == 1 and ctx.state.recovery.last["restored_from"] == "b1"
    kinds = [e.kind for e in ctx.state.events]
    assert kinds.index("database") < kinds.index("recovery")
    assert len(ctx.events.alerter.texts) == 1, "one alert, once the bot has reported"  # type: ignore[union-attr]
    alert = ctx.events.alerter.texts[0]  # type: ignore[union-attr]
    assert alert.startswith("♻️ database restored from local backup b1")
    assert "replayed 3 updates from the journal and 1 erasures" in alert
    assert ctx.state.bot.consecutive_failures == 0


def test_a_missing_database_on_a_first_run_is_not_a_loss(ctx):
    bot = make_supervisor(ctx, supervisor_with(ctx, [Script()], launches=0))
    guard = DataGuard(ctx, bot, BackupJobs(ctx, FailingKeeper()), None)  # type: ignore[arg-type]
    guard.check_file = lambda path: DatabaseCheck("missing", "no database file")

    def recover(*args):
        raise AssertionError("nothing to recover on a first run")

    guard.recover_files = recover
    run(guard.check_and_heal())
    assert ctx.state.database.integrity is Integrity.MISSING


def test_a_busy_database_is_checked_again_soon_and_never_called_corrupt(ctx):
    bot = make_supervisor(ctx, supervisor_with(ctx, [Script()], launches=0))
    guard = DataGuard(ctx, bot, BackupJobs(ctx, FailingKeeper()), None)  # type: ignore[arg-type]
    guard.check_file = lambda path: DatabaseCheck("unknown", "database is locked")
    ctx.state.database.integrity = Integrity.OK
    ctx.state.database.exists = True
    run(guard.check())
    assert ctx.state.database.integrity is Integrity.OK
    assert not guard.check_due()
    ctx.clock.advance(5.0)
    assert guard.check_due()


def test_tables_that_vanish_since_the_last_check_make_the_database_corrupt(ctx, caplog):
    bot = make_supervisor(ctx, supervisor_with(ctx, [Script()], launches=0))
    guard = DataGuard(ctx, bot, BackupJobs(ctx, FailingKeeper()), None)  # type: ignore[arg-type]
    tables = {"users": 1, "messages": 5}
    guard.check_file = lambda path: DatabaseCheck("ok", "ok", 8192, dict(tables))
    run(guard.check())
    assert ctx.remembered.load().known_tables == ["messages", "users"]
    del tables["messages"]
    with caplog.at_level(logging.ERROR):
        run(guard.check())
    assert ctx.state.database.integrity is Integrity.CORRUPT
    assert "tables missing since the last check: messages" in ctx.state.database.detail


def test_remembered_state_survives_a_new_store(ctx):
    ctx.remembered.update(app_version="v1", drill_at=123.0, offsite_id="x", offsite_created_at=1.0)
    again = RememberedStore(Path(ctx.layout.state_file))
    loaded = again.load()
    assert (loaded.app_version, loaded.drill_at, loaded.offsite_id) == ("v1", 123.0, "x")


class UnreadableBranch:
    """An offsite store whose branch cannot be read (a malformed index, a refused token)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.asked = 0

    def candidates(self, now: float | None = None):
        self.asked += 1
        raise OffsiteError("the index on branch db-backups is malformed", self.kind)


@pytest.mark.parametrize("kind", ["corrupt", "auth", "unreachable"])
def test_a_lost_disk_with_an_unreadable_branch_is_recovered_loudly_never_a_first_run(ctx, kind):
    bot = make_supervisor(ctx, supervisor_with(ctx, [Script()], launches=0))
    store = UnreadableBranch(kind)
    guard = DataGuard(ctx, bot, BackupJobs(ctx, FailingKeeper()), store)  # type: ignore[arg-type]
    guard.check_file = lambda path: DatabaseCheck("missing", "no database file")
    guard.count_tables = lambda path: {}
    recovered: list[str] = []

    def recover(layout, reason, detail, now, offsite, trust_hash=True):
        recovered.append(reason)
        return RecoveryResult(reason=reason, rejected=["offsite: could not list the backups"])

    guard.recover_files = recover
    guard.create_empty = lambda path: None
    run(guard.check_and_heal())
    assert recovered == ["the database file is missing"]
    assert store.asked == (3 if kind == "unreachable" else 1)  # passing errors are retried
    assert ctx.remembered.load().fresh_start_at is not None  # so offsite rotation is held


# -- check once: a file proven by its hash is checked next, with the bot up ---------------------


def test_a_hash_proven_install_is_checked_at_once_and_a_failure_recovers_checking_fully(ctx):
    bot = make_supervisor(ctx, supervisor_with(ctx, [Script()], launches=0))
    guard = DataGuard(ctx, bot, BackupJobs(ctx, FailingKeeper()), None)  # type: ignore[arg-type]
    ctx.remembered.update(database_seen=True)
    verdicts = [
        DatabaseCheck("corrupt", "bad header", 4096),
        DatabaseCheck("corrupt", "integrity_check: Page 7: btreeInitPage() returns error", 4096),
    ]
    guard.check_file = lambda path: verdicts.pop(0)
    guard.count_tables = lambda path: {"users": 3}
    trusted: list[bool] = []

    def recover(layout, reason, detail, now, offsite, trust_hash=True):
        trusted.append(trust_hash)
        return RecoveryResult(
            reason=reason,
            restored_from=f"b{len(trusted)}",
            source="local",
            check_deferred=trust_hash,
        )

    guard.recover_files = recover
    run(guard.check_and_heal())
    database = ctx.state.database
    assert trusted == [True] and database.integrity is Integrity.OK
    assert database.full_check_owed and "proven by sha256" in (database.detail or "")
    assert guard.check_due(), "the full check of the installed file is due at once"
    run(guard.check_and_heal())  # that check fails: a new recovery, trusting no hash
    assert trusted == [True, False]
    assert database.full_check_owed is None and "integrity_check ok at install" in database.detail
    assert not guard.check_due()


def test_a_quick_start_owes_the_full_check_and_runs_it_next(ctx):
    bot = make_supervisor(ctx, supervisor_with(ctx, [Script()], launches=0))
    guard = DataGuard(ctx, bot, BackupJobs(ctx, FailingKeeper()), None)  # type: ignore[arg-type]
    guard.read_disk = lambda path: DiskReading(str(path), 10.0, 1 << 30, 1 << 31, "/", True)
    ctx.settings.database.write_bytes(b"a database")
    ran: list[str] = []
    guard.quick_check_file = lambda path: (
        ran.append("quick") or DatabaseCheck("ok", "quick_check ok", 1)
    )
    guard.check_file = lambda path: (
        ran.append("full") or DatabaseCheck("ok", "integrity_check ok", 1)
    )
    run(guard.check_and_heal(quick=True))
    assert ran == ["quick"] and ctx.state.database.full_check_owed == "a quick start"
    assert guard.check_due()
    run(guard.tick())
    assert ran == ["quick", "full"] and ctx.state.database.full_check_owed is None
    assert not guard.check_due()


def test_an_orderly_stop_records_the_file_unless_a_recovery_or_restore_holds_the_bot(ctx):
    from tests import dbgen
    from watchdog.data.cleanstop import record_path, take_record

    bot = make_supervisor(ctx, supervisor_with(ctx, [Script()], launches=0))
    guard = DataGuard(ctx, bot, BackupJobs(ctx, FailingKeeper()), None)  # type: ignore[arg-type]
    dbgen.create_bot(ctx.settings.database, 100_000)
    run(guard.check())
    guard.record_clean_stop(bot_stopped=False)
    assert not record_path(ctx.layout).exists(), "a bot still running may still write"
    guard.record_clean_stop(bot_stopped=True)
    record, _ = take_record(ctx.layout)
    assert record is not None and record.proof == "full-check"

    async def stop_while_held() -> None:
        async with bot.held("restoring"):
            guard.record_clean_stop(bot_stopped=True)

    run(stop_while_held())
    assert not record_path(ctx.layout).exists()
    run(guard.check_and_heal(quick=True))  # a quick start whose full check has not run yet
    guard.record_clean_stop(bot_stopped=True)
    record, _ = take_record(ctx.layout)
    assert record is not None and record.proof == "none", "the next start checks fully first"


def test_a_loop_whose_round_fails_says_so_backs_off_and_goes_on(ctx):
    from watchdog.runtime.service import WatchdogService

    service = WatchdogService(ctx.settings, ctx.layout, clock=ctx.clock)
    service._preflight_done.set()
    seen: list[str | None] = []
    rounds = iter([OSError(28, "No space left on device"), OSError(28, "again"), None, "stop"])

    async def work() -> None:
        seen.append(service.state.loop_error)
        outcome = next(rounds)
        if isinstance(outcome, OSError):
            raise outcome
        if outcome == "stop":
            service.ctx.stopping.set()

    started = ctx.clock.monotonic()
    run(service._loop(work, "monitor", every=5.0))
    assert seen[0] is None and "No space left" in (seen[1] or "") and "again" in (seen[2] or "")
    assert seen[3] is None, "a round that worked clears the error"
    assert service.state.loop_error is None
    assert ctx.clock.monotonic() - started >= 1.0 + 2.0 + 5.0  # backed off, then its own pace
