"""Supervision of the bot: launch it when the data is fit, watch its exit and heartbeat, relaunch
with backoff, and keep it down while someone holds it (a recovery, an operator's restore).

When to relaunch and when a silent bot is stale are ``rules.restarts``' decisions; the process
itself is ``child.BotProcess``, made by ``spawn`` (a fake in tests).

After a recovery or a restore no separate process replays the journal: the bot replays it at
its start, as every start does, and writes what it did to ``run/replay.json`` before it polls.
``expect_replay_report`` (called while the bot is held) makes the supervisor read that report
for the next launch (``data.replay_report``), and settle it as failed when the bot exits first
or does not report within ``REPLAY_TIMEOUT``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from conf.exitcodes import EXIT_DATABASE, EXIT_NOT_CONFIGURED
from watchdog.data.replay_report import ReplayOutcome, not_reported, read_replay_report
from watchdog.rules import restarts
from watchdog.rules.state import BotPhase, Integrity
from watchdog.runtime.child import BotProcess
from watchdog.runtime.context import RuntimeContext

log = logging.getLogger(__name__)

TICK = 0.5
"""Seconds between looks at the bot (exit, heartbeat, held database)."""
REPLAY_TIMEOUT = 1800.0
"""Seconds the bot's start-up replay may take after a restore: its heartbeat is not awaited
before, and a report not made by then is a failed replay."""


class BotRun(Protocol):
    pid: int | None
    returncode: int | None

    async def start(self) -> int: ...
    async def wait(self, timeout: float | None = None) -> int | None: ...
    async def stop(self, grace: float) -> int: ...


Spawn = Callable[[Sequence[str], Mapping[str, str], Path, Path], BotRun]
ReplayListener = Callable[[ReplayOutcome], None]


@dataclass
class AwaitedReplay:
    """The report the next bot's start-up replay owes (after a recovery or a restore)."""

    since: float
    """Monotonic time it was expected."""
    done: asyncio.Future[ReplayOutcome]
    listeners: list[ReplayListener] = field(default_factory=list)
    launched: bool = False
    """A bot was launched since: only its exit says it did not report."""


async def _nothing(_: str = "") -> None:
    return None


class BotSupervisor:
    def __init__(self, ctx: RuntimeContext, argv: Sequence[str]) -> None:
        self.ctx = ctx
        self.argv = list(argv)
        self.spawn: Spawn = BotProcess
        self.environment: Callable[[], dict[str, str]] = dict
        self.read_heartbeat: Callable[[], float | None] = self._heartbeat_mtime
        self.on_database_exit: Callable[[], Awaitable[None]] = _nothing
        """Called when the bot exits saying it could not use the database (check it now)."""
        self.before_relaunch: Callable[[str], Awaitable[None]] = _nothing
        """Called with the exit's reason before the backoff (the restart snapshot)."""
        self.process: BotRun | None = None
        self._holds: list[str] = []
        self.awaited_replay: AwaitedReplay | None = None
        self._replay_reported_at = 0.0
        """Wall time the last awaited report came: the bot's silence counts from then."""

    # -- holding ------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def held(self, why: str) -> AsyncIterator[None]:
        """Stop the bot and keep it down for the block; leaving it lets the bot launch again
        (at once, if the data is fit)."""
        self._holds.append(why)
        try:
            await self.stop()
            # Held from now, not when the loop next looks: /health must not show the old bot
            # running after a restore that its successor has not reported on yet.
            self.ctx.state.bot.phase = BotPhase.HELD
            yield
        finally:
            self._holds.remove(why)

    @property
    def holding(self) -> bool:
        return bool(self._holds)

    def launchable(self) -> bool:
        if self._holds:
            return False
        return self.ctx.state.database.integrity in (Integrity.OK, Integrity.MISSING)

    def forget_failures(self) -> None:
        """After a recovery or restore the data is new: earlier crashes say nothing about it."""
        self.ctx.state.bot.consecutive_failures = 0

    # -- the start-up replay's report ----------------------------------------------------------

    def expect_replay_report(self, listener: ReplayListener) -> asyncio.Future[ReplayOutcome]:
        """While the bot is held: the next bot's start-up replay reports to ``listener`` (called
        at once when it is known, failures included) and to the future returned. Two restores
        under one hold share the one report (one bot replays onto the last)."""
        if self.awaited_replay is None:
            self.ctx.layout.replay_report.unlink(missing_ok=True)  # an earlier start's
            done = asyncio.get_running_loop().create_future()
            self.awaited_replay = AwaitedReplay(self.ctx.clock.monotonic(), done)
        self.awaited_replay.listeners.append(listener)
        return self.awaited_replay.done

    async def reported_replay(
        self, reported: asyncio.Future[ReplayOutcome], timeout: float
    ) -> ReplayOutcome:
        """The report, waited for at most ``timeout`` seconds (the wait ends; the report, when
        it comes, still reaches the listeners)."""
        try:
            return await asyncio.wait_for(asyncio.shield(reported), timeout)
        except TimeoutError:
            return not_reported(f"the bot has not reported its replay within {timeout:.0f} s")

    def _look_for_replay_report(self, exit_code: int | None = None) -> None:
        awaited = self.awaited_replay
        if awaited is None:
            return
        outcome = read_replay_report(self.ctx.layout.replay_report)
        if outcome is None:
            if exit_code == EXIT_NOT_CONFIGURED and awaited.launched:
                why = "the bot is not configured (TELEGRAM_BOT_TOKEN): it replays when it starts"
            elif exit_code is not None and awaited.launched:
                why = f"the bot exited with code {exit_code} before it reported its replay"
            elif exit_code is not None:
                return  # the bot stopped for the restore, not the one that owes the report
            elif self.ctx.stop_requested:
                why = "the watchdog stopped before the bot reported its replay"
            elif self.ctx.clock.monotonic() - awaited.since > REPLAY_TIMEOUT:
                why = f"the bot did not report its replay within {REPLAY_TIMEOUT:.0f} s"
            else:
                return
            outcome = not_reported(why)
        self.awaited_replay = None
        self._replay_reported_at = self.ctx.clock.time()
        for listener in awaited.listeners:
            try:
                listener(outcome)
            except Exception:
                log.exception("recording the replay's report failed")
        if not awaited.done.done():
            awaited.done.set_result(outcome)

    async def stop(self) -> int | None:
        """Stop a running bot (one SIGTERM, then SIGKILL after BOT_STOP_TIMEOUT)."""
        process = self.process
        if process is None or process.returncode is not None:
            return None
        return await process.stop(self.ctx.settings.bot_stop_timeout)

    # -- the loop -----------------------------------------------------------------------------

    async def run(self) -> None:
        ctx, bot = self.ctx, self.ctx.state.bot
        while not ctx.stop_requested:
            ctx.state.loop_tick = ctx.clock.time()
            self._look_for_replay_report()  # its time limit runs while no bot runs, too
            if not self.launchable():
                if bot.phase is not BotPhase.HELD:
                    bot.phase = BotPhase.HELD
                    what = "recovering" if self._holds else ctx.state.database.integrity.value
                    bot.message = f"bot held: database {what}"
                    log.error(
                        "%s (%s); not launching the bot", bot.message, ctx.state.database.detail
                    )
                await ctx.sleep(TICK)
                continue
            if bot.phase is BotPhase.NOT_CONFIGURED:
                await ctx.sleep(TICK)
                continue
            await self.run_once()
        self._look_for_replay_report()  # stopping: a report still awaited is settled

    async def run_once(self) -> None:
        ctx, bot = self.ctx, self.ctx.state.bot
        layout = ctx.layout
        process = self.spawn(self.argv, self.environment(), Path.cwd(), layout.bot_pid_file)
        if self.awaited_replay is not None:
            self.awaited_replay.launched = True
        launched_mono = ctx.clock.monotonic()
        bot.launched_at = ctx.clock.time()
        bot.phase = BotPhase.STARTING
        bot.message = None
        bot.next_launch_at = None
        try:
            bot.pid = await process.start()
        except OSError as error:
            # No process (out of memory, a full disk, a missing interpreter): a failed run,
            # backed off like any other, never the end of supervision.
            await self._launch_failed(error)
            return
        self.process = process
        bot.launches += 1
        ctx.events.record("bot", f"bot launched (pid {bot.pid}, launch {bot.launches})")

        code, reason = await self._watch(process, launched_mono)
        if code is None:
            return  # a stop was requested: the shutdown stops it, within its budget
        run_seconds = ctx.clock.monotonic() - launched_mono
        bot.pid = None
        bot.last_exit_code = code
        bot.last_exit_at = ctx.clock.time()
        bot.last_exit_reason = reason
        if code == EXIT_NOT_CONFIGURED:
            bot.phase = BotPhase.NOT_CONFIGURED
            bot.configured = False
            bot.message = (
                "bot not configured: TELEGRAM_BOT_TOKEN is missing or was refused by Telegram"
            )
            ctx.events.record("bot", f"{bot.message}; not relaunching")
            return
        if ctx.stop_requested:
            return
        if code == EXIT_DATABASE:
            log.error("the bot could not use the database: checking it now")
            await self.on_database_exit()
        bot.consecutive_failures = restarts.failures_after_exit(
            bot.consecutive_failures, run_seconds
        )
        delay = restarts.restart_delay(
            bot.consecutive_failures, ctx.settings.bot_restart_backoff_max
        )
        bot.phase = BotPhase.BACKOFF
        bot.next_launch_at = ctx.clock.time() + delay
        ctx.events.record(
            "bot",
            f"bot {reason} with code {code} after {run_seconds:.1f} s; relaunch in {delay:.1f} s"
            + (" (crash loop)" if restarts.is_crash_loop(bot.consecutive_failures) else ""),
        )
        snapshot_started = ctx.clock.monotonic()
        await self.before_relaunch(f"bot {reason} with code {code}")
        await ctx.sleep(delay - (ctx.clock.monotonic() - snapshot_started))

    async def _launch_failed(self, error: OSError) -> None:
        ctx, bot = self.ctx, self.ctx.state.bot
        bot.pid = None
        bot.consecutive_failures = restarts.failures_after_exit(bot.consecutive_failures, 0.0)
        delay = restarts.restart_delay(
            bot.consecutive_failures, ctx.settings.bot_restart_backoff_max
        )
        bot.phase = BotPhase.BACKOFF
        bot.next_launch_at = ctx.clock.time() + delay
        ctx.events.record(
            "bot",
            f"bot could not be launched ({error}); trying again in {delay:.1f} s",
            logging.ERROR,
        )
        await ctx.sleep(delay)

    async def _watch(self, process: BotRun, launched_mono: float) -> tuple[int | None, str]:
        """Until the bot exits (its code and why), or a stop is requested (None)."""
        ctx, bot = self.ctx, self.ctx.state.bot
        while True:
            code = await process.wait(TICK)
            ctx.state.loop_tick = ctx.clock.time()
            if code is not None:
                self._look_for_replay_report(code)
                return code, "exited"
            heartbeat = self.read_heartbeat()
            # After the heartbeat: the bot writes its report before it polls, so a bot seen
            # polling has had its report read.
            self._look_for_replay_report()
            if ctx.stop_requested:
                return None, "stopping"
            if heartbeat is not None:
                bot.last_heartbeat = heartbeat
            replaying = self.awaited_replay is not None
            verdict = restarts.heartbeat_verdict(
                ctx.clock.time(),
                max(bot.launched_at or 0.0, self._replay_reported_at),
                bot.last_heartbeat,
                ctx.settings.bot_heartbeat_timeout,
                *((REPLAY_TIMEOUT,) if replaying else ()),
            )
            if verdict.stale:
                reason = f"silent for {verdict.silent_for:.0f} s (no heartbeat)"
                log.error("bot (pid %s) %s: restarting it", bot.pid, reason)
                return await process.stop(ctx.settings.bot_stop_timeout), reason
            if not self.launchable():
                if self._holds:
                    reason = f"held ({', '.join(self._holds)})"
                else:
                    reason = f"database {ctx.state.database.integrity.value}"
                    log.error("database failed its check while the bot ran: stopping the bot")
                return await process.stop(ctx.settings.bot_stop_timeout), reason
            polled = bot.last_heartbeat is not None and bot.last_heartbeat >= (
                bot.launched_at or 0.0
            )
            if polled:
                bot.phase = BotPhase.RUNNING
            if bot.consecutive_failures and restarts.proven_healthy(
                ctx.clock.monotonic() - launched_mono, polled
            ):
                bot.consecutive_failures = 0

    def _heartbeat_mtime(self) -> float | None:
        try:
            return self.ctx.layout.heartbeat_file.stat().st_mtime
        except FileNotFoundError:
            return None
