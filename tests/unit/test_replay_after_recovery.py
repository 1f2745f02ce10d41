"""After a recovery the bot itself replays the journal as it starts and reports it: what the
watchdog makes of that report, of a failure, of no report at all (fake clock, fake bot)."""

from __future__ import annotations

import asyncio
import json

from tests.fakes.bot_process import FOREVER, Script
from tests.unit.test_runtime import FakeAlerter, make_supervisor, run, supervisor_with
from tests.unit.test_runtime import ctx as ctx  # the fixture
from watchdog.data.database import DatabaseCheck
from watchdog.data.disk import DiskReading
from watchdog.data.recovery import RecoveryResult
from watchdog.runtime.guard import DataGuard
from watchdog.runtime.supervision import REPLAY_TIMEOUT


class Jobs:
    async def refresh(self) -> None:
        return None


def heal_with(ctx, scripts: list[Script], launches: int) -> tuple:
    """A stack whose database is corrupt, a backup b1 to restore, and these bot runs."""
    spawner = supervisor_with(ctx, scripts, launches=launches)
    bot = make_supervisor(ctx, spawner)
    guard = DataGuard(ctx, bot, Jobs(), None)  # type: ignore[arg-type]
    ctx.remembered.update(database_seen=True)
    guard.check_file = lambda path: DatabaseCheck("corrupt", "bad header", 4096)
    guard.count_tables = lambda path: {"users": 3}
    guard.read_disk = lambda path: DiskReading(str(path), 10.0, 1 << 30, 1 << 31, "/", True)
    guard.recover_files = lambda *args, **kwargs: RecoveryResult(
        reason="bad header", restored_from="b1", source="local"
    )

    async def scenario() -> None:
        task = asyncio.create_task(bot.run())
        while not spawner.runs:
            await asyncio.sleep(0)
        await guard.check_and_heal()
        await asyncio.wait_for(task, 5)

    run(scenario())
    return spawner, bot


def alerts(ctx) -> list[str]:
    assert isinstance(ctx.events.alerter, FakeAlerter)
    return ctx.events.alerter.texts


def test_a_replay_that_fails_at_the_bots_start_is_reported_as_failed(ctx):
    failed = json.dumps({"error": "OperationalError: disk I/O error"})
    scripts = [
        Script(lasts=FOREVER),
        Script(lasts=0.1, code=1, writes=(ctx.layout.replay_report, failed)),
        Script(lasts=FOREVER),
    ]
    spawner, _ = heal_with(ctx, scripts, launches=2)
    assert spawner.argvs == [["bot"], ["bot"], ["bot"]], "never a separate replay process"
    replay = ctx.state.recovery.last["replay"]
    assert replay["ok"] is False and "disk I/O error" in replay["detail"]
    assert ctx.state.recovery.last_replay["ok"] is False
    (alert,) = alerts(ctx)
    assert "the journal was not replayed: the bot's replay at its start failed" in alert
    recoveries = [e.message for e in ctx.state.events if e.kind == "recovery"]
    assert "OperationalError: disk I/O error" in recoveries[-1]


def test_a_bot_that_exits_before_reporting_is_a_failed_replay(ctx):
    scripts = [Script(lasts=FOREVER), Script(lasts=0.1, code=65), Script(lasts=FOREVER)]
    heal_with(ctx, scripts, launches=2)
    detail = ctx.state.recovery.last["replay"]["detail"]
    assert detail == "the bot exited with code 65 before it reported its replay"
    assert "exited with code 65 before it reported" in alerts(ctx)[0]


def test_a_bot_that_never_reports_is_given_the_replay_time_then_failed(ctx):
    # The relaunched bot neither polls nor reports: its heartbeat is not awaited while it may
    # still be replaying, and after REPLAY_TIMEOUT the replay is said to have failed.
    scripts = [Script(lasts=FOREVER), Script(lasts=REPLAY_TIMEOUT + 30, code=1)]
    spawner = supervisor_with(ctx, scripts, launches=2)
    bot = make_supervisor(ctx, spawner)
    bot.read_heartbeat = lambda: None  # silent: still replaying
    guard = DataGuard(ctx, bot, Jobs(), None)  # type: ignore[arg-type]
    ctx.remembered.update(database_seen=True)
    guard.check_file = lambda path: DatabaseCheck("corrupt", "bad header", 4096)
    guard.count_tables = lambda path: {"users": 3}
    guard.read_disk = lambda path: DiskReading(str(path), 10.0, 1 << 30, 1 << 31, "/", True)
    guard.recover_files = lambda *args, **kwargs: RecoveryResult(
        reason="bad header", restored_from="b1", source="local"
    )

    async def scenario() -> None:
        task = asyncio.create_task(bot.run())
        while not spawner.runs:
            await asyncio.sleep(0)
        await guard.check_and_heal()
        while ctx.state.recovery.last_replay is None:
            await asyncio.sleep(0)
        ctx.stopping.set()
        await asyncio.wait_for(task, 5)

    run(scenario())
    assert not spawner.runs[1].stopped, "not killed as silent while it replays"
    detail = ctx.state.recovery.last["replay"]["detail"]
    assert detail == f"the bot did not report its replay within {REPLAY_TIMEOUT:.0f} s"
    assert "did not report its replay" in alerts(ctx)[0]


def test_a_restore_waits_for_the_report_and_says_when_there_is_none(ctx):
    bot = make_supervisor(ctx, supervisor_with(ctx, [Script()], launches=0))

    async def scenario() -> tuple:
        reported = bot.expect_replay_report(lambda outcome: None)
        waited = await bot.reported_replay(reported, 0.01)
        ctx.layout.replay_report.write_text(json.dumps({"replayed": 2}))
        bot._look_for_replay_report()
        return waited, await bot.reported_replay(reported, 5)

    waited, outcome = run(scenario())
    assert not waited.ok and "has not reported its replay within 0 s" in waited.detail
    assert outcome.ok and outcome.replayed == 2
