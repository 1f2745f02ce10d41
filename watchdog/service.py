"""The watchdog at run time: preflight, launch and watch the bot, check the data, shut down cleanly.

Decisions come from ``policy`` and ``health``; this module only sequences effects around them.
Blocking work (SQLite checks, disk readings) runs in a worker thread so /health stays fast.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from pathlib import Path

from conf.exitcodes import EXIT_NOT_CONFIGURED
from conf.layout import DataLayout
from conf.settings import Settings
from watchdog import policy
from watchdog.child import BotProcess, reap_leftover_bot
from watchdog.clock import Clock, SystemClock
from watchdog.database import check_database, sqlite_version
from watchdog.disk import read_disk
from watchdog.health import HealthReport, Thresholds, assess
from watchdog.state import BotPhase, Integrity, WatchdogState

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TICK = 0.5
"""Seconds between looks at the bot (exit, heartbeat, held database)."""
MONITOR_EVERY = 5.0
"""Seconds between cheap readings (disk usage, database size)."""


class WatchdogService:
    def __init__(
        self,
        settings: Settings,
        layout: DataLayout,
        clock: Clock | None = None,
        bot_argv: list[str] | None = None,
    ) -> None:
        self.settings = settings
        self.layout = layout
        self.clock = clock or SystemClock()
        self.bot_argv = bot_argv or [sys.executable, "-m", "bot"]
        self.state = WatchdogState(started_at=self.clock.time())
        self.state.database.path = str(layout.database)
        self.state.database.sqlite_version = sqlite_version()
        self.state.bot.configured = settings.telegram_bot_token is not None
        self.thresholds = Thresholds(
            disk_warn_percent=settings.disk_warn_percent,
            disk_critical_percent=settings.disk_critical_percent,
            heartbeat_timeout=settings.bot_heartbeat_timeout,
            integrity_check_every=settings.integrity_check_every,
        )
        self._stopping = asyncio.Event()
        self._preflight_done = asyncio.Event()
        self._bot: BotProcess | None = None
        self._last_integrity_check: float | None = None

    # -- reading ------------------------------------------------------------------------------

    def health(self) -> HealthReport:
        return assess(self.state, self.thresholds, self.clock.time())

    # -- life ---------------------------------------------------------------------------------

    def request_stop(self, signum: int | None = None) -> None:
        if not self._stopping.is_set():
            name = signal.Signals(signum).name if signum else "request"
            log.info("stop requested (%s): shutting down", name)
            self._stopping.set()

    async def run(self, serve_http: bool = True) -> int:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.request_stop, signum)
        http_runner = None
        if serve_http:
            from watchdog.http import start_http

            http_runner = await start_http(self, self.settings.host, self.settings.port)
        tasks = [
            asyncio.create_task(self._guard(self._supervise(), "supervise")),
            asyncio.create_task(self._guard(self._monitor(), "monitor")),
        ]
        try:
            await self._preflight()
            await self._stopping.wait()
        finally:
            await self._shutdown()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if http_runner is not None:
                await http_runner.cleanup()
        log.info("watchdog stopped")
        return 0

    async def _guard(self, work: object, name: str) -> None:
        """Run a loop; if it dies, say so in /health (503: restarting the service would help)."""
        try:
            await work  # type: ignore[misc]
        except asyncio.CancelledError:
            raise
        except Exception as error:
            log.exception("%s loop failed", name)
            self.state.loop_error = f"{name}: {type(error).__name__}: {error}"

    async def _preflight(self) -> None:
        grace = self.settings.bot_stop_timeout
        leftover = await asyncio.to_thread(reap_leftover_bot, self.layout.bot_pid_file, grace)
        if leftover:
            self._event("bot", f"stopped a bot left over from a previous watchdog (pid {leftover})")
        await self._measure()
        await self._check_integrity()
        self._preflight_done.set()

    async def _shutdown(self) -> None:
        bot = self._bot
        if bot is not None and bot.returncode is None:
            self.state.bot.phase = BotPhase.STOPPING
            grace = min(self.settings.bot_stop_timeout, self.settings.shutdown_budget)
            log.info("stopping the bot (pid %s), up to %.0f s", bot.pid, grace)
            code = await bot.stop(grace)
            log.info("bot stopped with exit code %s", code)
        self.state.bot.phase = BotPhase.STOPPED
        self.state.bot.pid = None

    # -- the bot ------------------------------------------------------------------------------

    def _bot_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["ERIXCAST_WATCHDOG_PID"] = str(os.getpid())
        env["DATA_DIR"] = str(self.settings.data_dir)
        env["DATABASE_PATH"] = str(self.settings.database)
        env["PYTHONUNBUFFERED"] = "1"
        env["PYTHONPATH"] = os.pathsep.join(
            part for part in (str(PROJECT_ROOT), env.get("PYTHONPATH", "")) if part
        )
        return env

    def _launchable(self) -> bool:
        return self.state.database.integrity in (Integrity.OK, Integrity.MISSING)

    async def _supervise(self) -> None:
        await self._wait_or_stop(self._preflight_done.wait())
        bot = self.state.bot
        while not self._stopping.is_set():
            self.state.loop_tick = self.clock.time()
            if not self._launchable():
                if bot.phase is not BotPhase.HELD:
                    bot.phase = BotPhase.HELD
                    bot.message = f"bot held: database {self.state.database.integrity.value}"
                    log.error(
                        "%s (%s); not launching the bot", bot.message, self.state.database.detail
                    )
                await self._sleep(TICK)
                continue
            if bot.phase is BotPhase.NOT_CONFIGURED:
                await self._sleep(TICK)
                continue
            await self._run_bot_once()

    async def _run_bot_once(self) -> None:
        bot = self.state.bot
        process = BotProcess(self.bot_argv, self._bot_env(), Path.cwd(), self.layout.bot_pid_file)
        self._bot = process
        launched_mono = self.clock.monotonic()
        bot.launched_at = self.clock.time()
        bot.phase = BotPhase.STARTING
        bot.message = None
        bot.next_launch_at = None
        bot.pid = await process.start()
        bot.launches += 1
        self._event("bot", f"bot launched (pid {bot.pid}, launch {bot.launches})")

        code: int | None = None
        reason = "exited"
        while code is None:
            code = await process.wait(TICK)
            self.state.loop_tick = self.clock.time()
            if code is not None:
                break
            if self._stopping.is_set():
                return  # _shutdown stops it, within the shutdown budget
            self._read_heartbeat()
            verdict = policy.heartbeat_verdict(
                self.clock.time(),
                bot.launched_at,
                bot.last_heartbeat,
                self.settings.bot_heartbeat_timeout,
            )
            if verdict.stale:
                reason = f"silent for {verdict.silent_for:.0f} s (no heartbeat)"
                log.error("bot (pid %s) %s: restarting it", bot.pid, reason)
                code = await process.stop(self.settings.bot_stop_timeout)
            elif not self._launchable():
                reason = f"database {self.state.database.integrity.value}"
                log.error("database failed its check while the bot ran: stopping the bot")
                code = await process.stop(self.settings.bot_stop_timeout)
            elif bot.last_heartbeat is not None and bot.last_heartbeat >= bot.launched_at:
                bot.phase = BotPhase.RUNNING

        run_seconds = self.clock.monotonic() - launched_mono
        bot.pid = None
        bot.last_exit_code = code
        bot.last_exit_at = self.clock.time()
        bot.last_exit_reason = reason
        if code == EXIT_NOT_CONFIGURED:
            bot.phase = BotPhase.NOT_CONFIGURED
            bot.configured = False
            bot.message = (
                "bot not configured: TELEGRAM_BOT_TOKEN is missing or was refused by Telegram"
            )
            self._event("bot", f"{bot.message}; not relaunching")
            return
        if self._stopping.is_set():
            return
        bot.consecutive_failures = policy.failures_after_exit(bot.consecutive_failures, run_seconds)
        delay = policy.restart_delay(
            bot.consecutive_failures, self.settings.bot_restart_backoff_max
        )
        bot.phase = BotPhase.BACKOFF
        bot.next_launch_at = self.clock.time() + delay
        self._event(
            "bot",
            f"bot {reason} with code {code} after {run_seconds:.1f} s; relaunch in {delay:.1f} s"
            + (" (crash loop)" if policy.is_crash_loop(bot.consecutive_failures) else ""),
        )
        await self._sleep(delay)

    def _read_heartbeat(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.state.bot.last_heartbeat = self.layout.heartbeat_file.stat().st_mtime

    # -- the data -----------------------------------------------------------------------------

    async def _monitor(self) -> None:
        await self._wait_or_stop(self._preflight_done.wait())
        while not self._stopping.is_set():
            await self._measure()
            due_at = (self._last_integrity_check or 0) + self.settings.integrity_check_every
            if self.clock.monotonic() >= due_at:
                await self._check_integrity()
            await self._sleep(MONITOR_EVERY)

    async def _measure(self) -> None:
        reading = await asyncio.to_thread(read_disk, self.settings.data_dir)
        storage = self.state.storage
        storage.path = reading.path
        storage.disk_usage_percent = reading.percent
        storage.free_bytes = reading.free_bytes
        storage.total_bytes = reading.total_bytes
        storage.mount_point = reading.mount_point
        storage.persistent_disk = reading.persistent
        first = storage.measured_at is None
        storage.measured_at = self.clock.time()
        if first or reading.percent >= self.settings.disk_warn_percent:
            level = (
                logging.INFO
                if reading.percent < self.settings.disk_warn_percent
                else logging.WARNING
            )
            log.log(
                level,
                "disk %s: %.1f%% used, %.0f MB free (warn %.0f%%, critical %.0f%%)",
                reading.mount_point,
                reading.percent,
                reading.free_bytes / 1_048_576,
                self.settings.disk_warn_percent,
                self.settings.disk_critical_percent,
            )
        try:
            self.state.database.size_bytes = self.settings.database.stat().st_size
            self.state.database.exists = True
        except FileNotFoundError:
            self.state.database.size_bytes = 0
            self.state.database.exists = False

    async def _check_integrity(self) -> None:
        self._last_integrity_check = self.clock.monotonic()
        result = await asyncio.to_thread(check_database, self.settings.database)
        db = self.state.database
        db.checked_at = self.clock.time()
        db.check_seconds = result.seconds
        db.detail = result.detail
        if result.state == "ok":
            db.integrity = Integrity.OK
            db.tables = result.tables
            db.size_bytes = result.size_bytes
            log.info(
                "database ok: %s rows in %s tables, %.1f MB, checked in %.2f s",
                sum(result.tables.values()),
                len(result.tables),
                result.size_bytes / 1_048_576,
                result.seconds,
            )
        elif result.state == "missing":
            db.integrity = Integrity.MISSING
            db.tables = {}
            log.info("no database at %s yet: the bot will create it", self.settings.database)
        else:
            first_report = db.integrity is not Integrity.CORRUPT
            db.integrity = Integrity.CORRUPT
            if first_report:
                self._event(
                    "database", f"database failed its check: {result.detail}", logging.ERROR
                )

    # -- helpers ------------------------------------------------------------------------------

    def _event(self, kind: str, message: str, level: int = logging.INFO) -> None:
        log.log(level, message)
        self.state.record(self.clock.time(), kind, message)

    async def _sleep(self, seconds: float) -> None:
        """Sleep, waking early when a stop is requested."""
        if seconds <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _wait_or_stop(self, awaitable: object) -> None:
        waiter = asyncio.ensure_future(awaitable)  # type: ignore[arg-type]
        stopper = asyncio.ensure_future(self._stopping.wait())
        await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        for task in (waiter, stopper):
            task.cancel()
