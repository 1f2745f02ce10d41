"""The watchdog at run time, wired: preflight, then three loops — supervise the bot, guard the
data (checks, healing, scheduled backups), maintenance (offsite, drills) — until a stop, then a
bounded shutdown. Each job lives in its own module; this one only builds and sequences them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from conf.layout import DataLayout
from conf.logging import add_secret
from conf.settings import Settings
from conf.units import MIB
from watchdog.data.backups import BackupKeeper, Outcome
from watchdog.data.database import sqlite_version
from watchdog.data.fs import set_aside_files
from watchdog.data.kinds import database_kind
from watchdog.data.remembered import RememberedStore
from watchdog.data.restore import cleanup_restore_leftovers
from watchdog.offsite import OffsiteError, store_from_settings
from watchdog.rules import backoff
from watchdog.rules.health import HealthReport, Thresholds, assess
from watchdog.rules.state import BotPhase, Integrity, WatchdogState
from watchdog.runtime.child import AdminAddress, bot_environment
from watchdog.runtime.clock import Clock, SystemClock
from watchdog.runtime.context import RuntimeContext
from watchdog.runtime.events import Alerter, Events
from watchdog.runtime.jobs import BackupJobs
from watchdog.runtime.leadership import Leadership
from watchdog.runtime.maintenance import Maintenance
from watchdog.runtime.orphans import reap_leftover_bot
from watchdog.runtime.pauses import freeze_long_lived
from watchdog.runtime.pings import HeartbeatPinger
from watchdog.runtime.requests import OperatorRequests
from watchdog.runtime.server_guard import make_guard
from watchdog.runtime.supervision import BotSupervisor
from watchdog.version import app_version

if TYPE_CHECKING:
    from watchdog.offsite.store import OffsiteStore

log = logging.getLogger(__name__)

MONITOR_EVERY = 5.0
"""Seconds between rounds of the data guard and of maintenance."""
PARENT_EVERY = 1.0
LOOP_RETRY_FIRST, LOOP_RETRY_MAX = 1.0, 60.0
"""Backoff of a loop whose round failed."""


class Front(Protocol):
    """The web layer as the runtime sees it: open (returning the admin API's address), close."""

    async def open(self, service: WatchdogService, admin_file: Path) -> AdminAddress: ...

    async def close(self) -> None: ...


class WatchdogService:
    def __init__(
        self,
        settings: Settings,
        layout: DataLayout,
        clock: Clock | None = None,
        bot_argv: Sequence[str] | None = None,
        front: Front | None = None,
        parent_pid: int | None = None,
    ) -> None:
        self.settings = settings
        self.front = front
        """What serves HTTP (``watchdog.web.front.WebFront``); None serves nothing."""
        self.parent_pid = parent_pid
        """Our supervisor: if it dies we stop (``runtime.orphans.follow_parent``)."""
        self.layout = layout
        self.clock: Clock = clock or SystemClock()
        self.state = WatchdogState(started_at=self.clock.time())
        self.state.database.path = str(layout.database)
        self.state.database.sqlite_version = sqlite_version()
        self.state.bot.configured = settings.telegram_bot_token is not None
        self.state.backups.intervals = settings.intervals()
        self.thresholds = Thresholds(
            disk_warn_percent=settings.disk_warn_percent,
            disk_critical_percent=settings.disk_critical_percent,
            heartbeat_timeout=settings.bot_heartbeat_timeout,
            integrity_check_every=settings.integrity_check_every,
            offsite_every=settings.backup_offsite_every,
            journal_offsite_every=settings.journal_offsite_every,
        )
        self.ctx = RuntimeContext(
            settings=settings,
            layout=layout,
            clock=self.clock,
            state=self.state,
            remembered=RememberedStore(layout.state_file),
            events=Events(
                self.state,
                self.clock.time,
                Alerter.from_settings(settings),
                HeartbeatPinger.from_settings(settings),
            ),
            kind=database_kind(settings),
        )
        keeper = BackupKeeper(
            layout,
            keep=settings.retention(),
            min_free_bytes=int(settings.backup_min_free_mb * MIB),
            app_version=app_version(),
            source=self.ctx.database,
        )
        self.keeper = keeper
        self.offsite = self._build_offsite()
        self.bot = BotSupervisor(self.ctx, bot_argv or [sys.executable, "-m", "bot"])
        self.jobs = BackupJobs(self.ctx, keeper)
        self.leadership = Leadership(self.ctx)
        self.guard = make_guard(self.ctx, self.bot, self.jobs, self.offsite)
        self.maintenance = Maintenance(self.ctx, keeper.catalogue, self.offsite)
        self.requests = OperatorRequests(
            self.ctx, self.bot, self.guard, self.jobs, self.offsite, self.maintenance.drill
        )
        self.bot.on_database_exit = self.guard.check_and_heal
        self.bot.before_relaunch = self._before_relaunch
        self._admin: AdminAddress | None = None
        self.bot.environment = lambda: bot_environment(settings, self._admin)
        self._preflight_done = asyncio.Event()
        self._loop_errors: dict[str, str] = {}

    # -- what the web layer sees (watchdog.web.protocols) ----------------------------------------

    def health(self) -> HealthReport:
        return assess(self.state, self.thresholds, self.clock.time())

    async def manual_backup(self, reason: str) -> tuple[Outcome | None, str | None]:
        return await self.requests.manual_backup(reason)

    async def manual_restore(
        self, wanted: str, from_git: bool = False, replay: bool = True
    ) -> tuple[bool, str]:
        return await self.requests.manual_restore(wanted, from_git, replay)

    async def release_offsite_rotation(self) -> str:
        held = self.maintenance.release_rotation_hold()
        if held is None:
            return "no fresh start holds offsite rotation: nothing to release"
        return "released: offsite rotation runs again from the next push"

    # -- life ---------------------------------------------------------------------------------

    def request_stop(self, signum: int | None = None) -> None:
        if not self.ctx.stop_requested:
            name = signal.Signals(signum).name if signum else "request"
            log.info("stop requested (%s): shutting down", name)
            self.ctx.stopping.set()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.request_stop, signum)
        if self.front is not None:
            self._admin = await self.front.open(self, self.layout.admin_file)
            add_secret(self._admin.secret)
            self.settings.add_runtime_secret(self._admin.secret)
        tasks = [
            asyncio.create_task(self._loop(self.bot.run, "supervise", every=None)),
            asyncio.create_task(self._loop(self._guard_round, "monitor", every=MONITOR_EVERY)),
            asyncio.create_task(
                self._loop(self.maintenance.tick, "maintenance", every=MONITOR_EVERY)
            ),
            asyncio.create_task(self._loop(self._follow_parent, "parent", every=PARENT_EVERY)),
            asyncio.create_task(self._loop(self.leadership.tick, "leader", every=PARENT_EVERY)),
        ]
        try:
            preflight = asyncio.create_task(self._preflight())
            await self.ctx.wait_or_stop(asyncio.shield(preflight))
            if not preflight.done():
                preflight.cancel()  # stop requested mid-preflight; every step can be resumed
                await asyncio.gather(preflight, return_exceptions=True)
            elif preflight.exception() is not None:
                raise preflight.exception()  # type: ignore[misc]
            await self.ctx.stopping.wait()
        finally:
            await self._shutdown()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self.front is not None:
                await self.front.close()
        log.info("watchdog stopped")
        return 0

    async def _loop(
        self, work: Callable[[], Awaitable[None]], name: str, every: float | None
    ) -> None:
        """After preflight: run ``work`` (once, or every ``every`` seconds) until a stop. A round
        that fails (a full disk under a state write, anything unforeseen) is said in /health
        (503: restarting the service may help) and tried again with the one backoff; the next
        round that succeeds clears it. A loop never ends on an error."""
        ctx = self.ctx
        await ctx.wait_or_stop(self._preflight_done.wait())
        failures = 0
        while not ctx.stop_requested:
            try:
                await work()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                failures += 1
                pause = backoff.delay(failures, LOOP_RETRY_FIRST, LOOP_RETRY_MAX)
                log.exception(
                    "%s loop failed (%d in a row); again in %.0f s", name, failures, pause
                )
                self._loop_errors[name] = f"{name}: {type(error).__name__}: {error}"
                self.state.loop_error = "; ".join(self._loop_errors.values())
                await ctx.sleep(pause)
                continue
            if failures:
                failures = 0
                self._loop_errors.pop(name, None)
                self.state.loop_error = "; ".join(self._loop_errors.values()) or None
                log.info("%s loop going again", name)
            if every is None:
                return
            await ctx.sleep(every)

    async def _follow_parent(self) -> None:
        """Where the kernel's parent-death signal is missing: re-parented means orphaned."""
        if self.parent_pid is not None and os.getppid() != self.parent_pid:
            log.error("our supervisor (pid %s) is gone: stopping", self.parent_pid)
            self.request_stop()

    async def _guard_round(self) -> None:
        self.state.files_set_aside = set_aside_files()
        await self.guard.tick()
        await self.jobs.scheduled()
        if self.state.database.exists:
            self.state.history.note_size(self.clock.time(), self.state.database.size_bytes)

    async def _before_relaunch(self, reason: str) -> None:
        if self.guard.database_appeared():
            await self.guard.check()
        await self.jobs.restart_snapshot(reason)

    async def _preflight(self) -> None:
        ctx = self.ctx
        remembered = ctx.remembered.load()
        if remembered.fresh_start_at:
            self.state.recovery.fresh_start_at = remembered.fresh_start_at
            self.state.recovery.fresh_start_reason = remembered.fresh_start_reason
        grace = self.settings.bot_stop_timeout
        leftover = await asyncio.to_thread(reap_leftover_bot, self.layout.bot_pid_file, grace)
        if leftover:
            ctx.events.record(
                "bot", f"stopped a bot left over from a previous watchdog (pid {leftover})"
            )
        for path in await asyncio.to_thread(self.keeper.cleanup):
            log.warning("removed %s, left by an interrupted backup (never a verified backup)", path)
        for path in await asyncio.to_thread(cleanup_restore_leftovers, self.layout):
            log.warning("removed %s, left by an interrupted restore (a copy of a backup)", path)
        await self.jobs.refresh()
        await self.guard.measure()
        await self.guard.start_up()
        await self.guard.resume_salvage()
        await self.leadership.tick()
        await self.jobs.deploy_snapshot()
        self._preflight_done.set()
        log.debug("%d start-up objects left out of later collections", freeze_long_lived())

    async def _shutdown(self) -> None:
        started = self.clock.monotonic()
        budget = self.settings.shutdown_budget
        process = self.bot.process
        bot = self.state.bot
        if process is not None and process.returncode is None:
            bot.phase = BotPhase.STOPPING
            grace = min(self.settings.bot_stop_timeout, budget)
            log.info("stopping the bot (pid %s), up to %.0f s", process.pid, grace)
            code = await process.stop(grace)
            log.info("bot stopped with exit code %s", code)
        bot.phase = BotPhase.STOPPED
        bot.pid = None
        if process is not None and self.state.database.integrity is Integrity.OK:
            await self.jobs.shutdown_snapshot(budget - (self.clock.monotonic() - started))
        stopped = process is None or process.returncode is not None
        await asyncio.to_thread(
            self.guard.record_clean_stop, stopped and self._preflight_done.is_set()
        )
        await self.leadership.close()

    def _build_offsite(self) -> OffsiteStore | None:
        try:
            store = store_from_settings(self.settings)
        except OffsiteError as error:
            self.state.offsite.last_error = str(error)
            self.state.offsite.last_error_kind = error.kind
            log.error("offsite backups are off: %s", error)
            return None
        self.state.offsite.enabled = store is not None
        return store
