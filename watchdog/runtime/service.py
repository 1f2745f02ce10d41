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
import time
from pathlib import Path

from conf.exitcodes import EXIT_DATABASE, EXIT_NOT_CONFIGURED
from conf.layout import DataLayout
from conf.logging import add_secret
from conf.settings import Settings
from conf.units import MIB
from watchdog.data.backups import BackupKeeper, BackupSkipped, Outcome
from watchdog.data.database import (
    DatabaseCheck,
    check_database,
    count_tables,
    create_empty_database,
    sqlite_version,
)
from watchdog.data.disk import read_disk
from watchdog.data.drill import run_drill
from watchdog.data.manual_restore import choose, restore_chosen
from watchdog.data.recovery import (
    OffsiteFetch,
    RecoveryResult,
    recover,
    restore_from_offsite,
    resume_pending_salvage,
)
from watchdog.data.restore import RestoreError, cleanup_restore_leftovers
from watchdog.data.snapshot import Proceed, SnapshotError
from watchdog.data.statefile import load_state, update_state
from watchdog.offsite import OffsiteError, OffsiteStore
from watchdog.rules import backoff, restarts, schedule
from watchdog.rules.health import HealthReport, Thresholds, assess
from watchdog.rules.recovery import recovery_reason, vanished_tables
from watchdog.rules.state import BackupSummary, BotPhase, Integrity, WatchdogState
from watchdog.runtime.alerts import Alerter
from watchdog.runtime.child import BotProcess, reap_leftover_bot
from watchdog.runtime.clock import Clock, SystemClock
from watchdog.version import app_version
from watchdog.web.admin import AdminEndpoint, start_admin

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BOT_NEEDS_NOT = ("BACKUP_GIT_TOKEN", "BACKUP_AGE_KEY", "STATS_TOKEN", "BACKUP_GIT_URL")
TICK = 0.5
"""Seconds between looks at the bot (exit, heartbeat, held database)."""
MONITOR_EVERY = 5.0
"""Seconds between cheap readings (disk usage, database size)."""
RECHECK_AFTER = 5.0
"""Seconds before checking again a database that could not be checked (busy, locked)."""
BACKUP_RETRY_FIRST, BACKUP_RETRY_MAX = 60.0, 3600.0
"""Backoff for a scheduled backup that failed: 1 min, 2 min, 4 min … up to an hour."""


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
            offsite_every=settings.backup_offsite_every,
        )
        self.state.backups.intervals = settings.intervals()
        self.keeper = BackupKeeper(
            layout,
            keep=settings.retention(),
            min_free_bytes=int(settings.backup_min_free_mb * MIB),
            app_version=app_version(),
        )
        self._data_lock = asyncio.Lock()
        """One operation on the data at a time: checks, backups, recovery, restores, drills."""
        self._alerter = Alerter.from_settings(settings)
        self._admin: AdminEndpoint | None = None
        self.offsite = self._build_offsite()
        self._stopping = asyncio.Event()
        self._preflight_done = asyncio.Event()
        self._bot: BotProcess | None = None
        self._last_integrity_check: float | None = None
        self._recovering = False
        self._database_seen: bool | None = None
        self._backup_failures: dict[str, int] = {}
        self._backup_retry_at: dict[str, float] = {}
        self._background: set[asyncio.Task[object]] = set()

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
            from watchdog.web.public import start_http

            http_runner = await start_http(self, self.settings.host, self.settings.port)
        admin_runner, self._admin = await start_admin(self)
        add_secret(self._admin.secret)
        self.settings.add_runtime_secret(self._admin.secret)
        await asyncio.to_thread(self._admin.save, self.layout.admin_file)
        tasks = [
            asyncio.create_task(self._guard(self._supervise(), "supervise")),
            asyncio.create_task(self._guard(self._monitor(), "monitor")),
            asyncio.create_task(self._guard(self._maintenance(), "maintenance")),
        ]
        try:
            preflight = asyncio.create_task(self._preflight())
            await self._wait_or_stop(asyncio.shield(preflight))
            if not preflight.done():
                preflight.cancel()  # stop requested mid-preflight; every step can be resumed
                await asyncio.gather(preflight, return_exceptions=True)
            elif preflight.exception() is not None:
                raise preflight.exception()  # type: ignore[misc]
            await self._stopping.wait()
        finally:
            await self._shutdown()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.layout.admin_file.unlink(missing_ok=True)
            await admin_runner.cleanup()
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

    async def _load_remembered(self) -> None:
        """What the state file carries across restarts and /health must keep saying."""
        state = await asyncio.to_thread(load_state, self.layout.state_file)
        if state.get("fresh_start_at"):
            self.state.recovery.fresh_start_at = float(state["fresh_start_at"])
            self.state.recovery.fresh_start_reason = state.get("fresh_start_reason")

    async def _preflight(self) -> None:
        await self._load_remembered()
        grace = self.settings.bot_stop_timeout
        leftover = await asyncio.to_thread(reap_leftover_bot, self.layout.bot_pid_file, grace)
        if leftover:
            self._event("bot", f"stopped a bot left over from a previous watchdog (pid {leftover})")
        removed = await asyncio.to_thread(self.keeper.cleanup)
        for path in removed:
            log.warning("removed %s, left by an interrupted backup (never a verified backup)", path)
        for path in await asyncio.to_thread(cleanup_restore_leftovers, self.layout):
            log.warning("removed %s, left by an interrupted restore (a copy of a backup)", path)
        await self._refresh_backups()
        await self._measure()
        await self._check_and_heal()
        if self.state.database.integrity is Integrity.OK:
            for report in await asyncio.to_thread(resume_pending_salvage, self.layout):
                self._event("recovery", f"finished an interrupted salvage: merged {report.merged}")
        await self._deploy_snapshot()
        self._preflight_done.set()

    async def _deploy_snapshot(self) -> None:
        """Before new code touches the data: a ``deploy`` backup when the app version changed."""
        current = app_version()
        recorded = (await asyncio.to_thread(load_state, self.layout.state_file)).get("app_version")
        if not schedule.deploy_snapshot_needed(current, recorded):
            return
        integrity = self.state.database.integrity
        if integrity is Integrity.OK:
            outcome = await self._backup(
                "deploy", f"deploy: {recorded or 'first run'} -> {current}"
            )
            if outcome is None or outcome.backup is None:
                log.error("no deploy backup: the new version starts without one (see above)")
                return
        elif integrity is not Integrity.MISSING:
            return  # a damaged database: record nothing, so the snapshot is tried again
        await asyncio.to_thread(update_state, self.layout.state_file, app_version=current)

    async def _shutdown(self) -> None:
        started = self.clock.monotonic()
        budget = self.settings.shutdown_budget
        bot = self._bot
        bot_ran = bot is not None
        if bot is not None and bot.returncode is None:
            self.state.bot.phase = BotPhase.STOPPING
            grace = min(self.settings.bot_stop_timeout, budget)
            log.info("stopping the bot (pid %s), up to %.0f s", bot.pid, grace)
            code = await bot.stop(grace)
            log.info("bot stopped with exit code %s", code)
        self.state.bot.phase = BotPhase.STOPPED
        self.state.bot.pid = None
        if bot_ran and self.state.database.integrity is Integrity.OK:
            await self._shutdown_snapshot(budget - (self.clock.monotonic() - started))

    async def _shutdown_snapshot(self, remaining: float) -> None:
        size = self.state.database.size_bytes
        speed = self.state.backups.bytes_per_second or 50 * MIB
        if not schedule.shutdown_snapshot_fits(remaining, size, speed):
            log.warning(
                "no shutdown backup: %.1f MB would not fit in the %.1f s left of SHUTDOWN_BUDGET",
                size / MIB,
                remaining,
            )
            return
        deadline = time.monotonic() + max(0.5, remaining - 1.0)
        await self._backup(
            "shutdown",
            "shutdown",
            proceed=lambda: time.monotonic() < deadline,
            skip_if_unchanged=True,
            lock_timeout=max(0.1, deadline - time.monotonic()),
        )

    # -- the bot ------------------------------------------------------------------------------

    def _bot_env(self) -> dict[str, str]:
        env = dict(os.environ)
        for secret in BOT_NEEDS_NOT:  # the bot reads untrusted input: give it no more than it needs
            env.pop(secret, None)
        env["ERIXCAST_WATCHDOG_PID"] = str(os.getpid())
        env["DATA_DIR"] = str(self.settings.data_dir)
        env["DATABASE_PATH"] = str(self.settings.database)
        env["PYTHONUNBUFFERED"] = "1"
        if self._admin is not None:
            env["ERIXCAST_WATCHDOG_URL"] = self._admin.url
            env["ERIXCAST_WATCHDOG_SECRET"] = self._admin.secret
        env["PYTHONPATH"] = os.pathsep.join(
            part for part in (str(PROJECT_ROOT), env.get("PYTHONPATH", "")) if part
        )
        return env

    def _launchable(self) -> bool:
        if self._recovering:
            return False
        return self.state.database.integrity in (Integrity.OK, Integrity.MISSING)

    async def _supervise(self) -> None:
        await self._wait_or_stop(self._preflight_done.wait())
        bot = self.state.bot
        while not self._stopping.is_set():
            self.state.loop_tick = self.clock.time()
            if not self._launchable():
                if bot.phase is not BotPhase.HELD:
                    bot.phase = BotPhase.HELD
                    what = "recovering" if self._recovering else self.state.database.integrity.value
                    bot.message = f"bot held: database {what}"
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
        launched_mono = self.clock.monotonic()
        bot.launched_at = self.clock.time()
        bot.phase = BotPhase.STARTING
        bot.message = None
        bot.next_launch_at = None
        bot.pid = await process.start()
        self._bot = process
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
            verdict = restarts.heartbeat_verdict(
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
        if code == EXIT_DATABASE:
            log.error("the bot could not use the database: checking it now")
            await self._check_and_heal()
        bot.consecutive_failures = restarts.failures_after_exit(
            bot.consecutive_failures, run_seconds
        )
        delay = restarts.restart_delay(
            bot.consecutive_failures, self.settings.bot_restart_backoff_max
        )
        bot.phase = BotPhase.BACKOFF
        bot.next_launch_at = self.clock.time() + delay
        self._event(
            "bot",
            f"bot {reason} with code {code} after {run_seconds:.1f} s; relaunch in {delay:.1f} s"
            + (" (crash loop)" if restarts.is_crash_loop(bot.consecutive_failures) else ""),
        )
        snapshot_started = self.clock.monotonic()
        await self._restart_snapshot(f"bot {reason} with code {code}")
        await self._sleep(delay - (self.clock.monotonic() - snapshot_started))

    async def _restart_snapshot(self, reason: str) -> None:
        """Before relaunching: a ``restart`` backup, unless nothing changed since the newest one
        (so a crash loop does not fill the disk)."""
        if self._database_appeared():
            await self._check_integrity()
        if self.state.database.integrity is Integrity.OK:
            await self._backup("restart", reason, skip_if_unchanged=True)

    def _read_heartbeat(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.state.bot.last_heartbeat = self.layout.heartbeat_file.stat().st_mtime

    # -- the data -----------------------------------------------------------------------------

    async def _monitor(self) -> None:
        await self._wait_or_stop(self._preflight_done.wait())
        while not self._stopping.is_set():
            await self._measure()
            due_at = (self._last_integrity_check or 0) + self.settings.integrity_check_every
            vanished = (
                self.state.database.integrity is Integrity.OK and not self.state.database.exists
            )
            unknown = self.state.database.integrity is Integrity.UNKNOWN
            if self.clock.monotonic() >= due_at or self._database_appeared() or vanished or unknown:
                await self._check_and_heal()
            await self._scheduled_backups()
            await self._sleep(MONITOR_EVERY)

    async def _maintenance(self) -> None:
        """Offsite pushes and restore drills: slow, so apart from the checks and backups above;
        a failure of one round is logged and the next round goes on."""
        await self._wait_or_stop(self._preflight_done.wait())
        while not self._stopping.is_set():
            for work in (self._offsite_push_if_due, self._drill_if_due):
                try:
                    await work()
                except asyncio.CancelledError:
                    raise
                except Exception as error:
                    self._event("maintenance", f"{work.__name__} failed: {error!r}", logging.ERROR)
            await self._sleep(MONITOR_EVERY)

    async def _scheduled_backups(self) -> None:
        if self.state.database.integrity is not Integrity.OK:
            return
        now = self.clock.time()
        backups = await asyncio.to_thread(self.keeper.catalogue.scan)
        newest_at = schedule.newest_trusted(
            now, [(b.tier, b.created_at) for b in backups], self.settings.intervals()
        )
        for tier in schedule.due_tiers(now, newest_at, self.settings.intervals()):
            if self._stopping.is_set():
                return
            if now < self._backup_retry_at.get(tier, 0.0):
                continue
            outcome = await self._backup(tier, "scheduled")
            if outcome is None:
                failures = self._backup_failures.get(tier, 0) + 1
                self._backup_failures[tier] = failures
                delay = backoff.delay(failures, BACKUP_RETRY_FIRST, BACKUP_RETRY_MAX)
                self._backup_retry_at[tier] = now + delay
            else:
                self._backup_failures.pop(tier, None)
                self._backup_retry_at.pop(tier, None)

    # -- backups ------------------------------------------------------------------------------

    async def _backup(
        self,
        tier: str,
        reason: str,
        *,
        proceed: Proceed | None = None,
        skip_if_unchanged: bool = False,
        lock_timeout: float | None = None,
    ) -> Outcome | None:
        """One backup, serialised with every other; failures are reported, never raised.

        Unless told otherwise, a backup is abandoned as soon as a stop is requested, so shutdown
        never waits for a long scheduled one.
        """
        try:
            await asyncio.wait_for(self._data_lock.acquire(), lock_timeout)
        except TimeoutError:
            log.warning("no %s backup: another backup is still running", tier)
            return None
        try:
            try:
                outcome = await asyncio.to_thread(
                    self.keeper.take,
                    tier,
                    reason,
                    self.clock.time(),
                    proceed=proceed or (lambda: not self._stopping.is_set()),
                    skip_if_unchanged=skip_if_unchanged,
                )
            except (SnapshotError, BackupSkipped, OSError) as error:
                self.state.backups.last_error = f"{tier}: {error}"
                self.state.backups.last_error_at = self.clock.time()
                self._event("backup", f"{tier} backup failed: {error}", logging.ERROR)
                await self._refresh_backups()
                return None
        finally:
            self._data_lock.release()
        self.state.backups.last_error = None
        if outcome.skipped:
            log.info("%s backup skipped: %s", tier, outcome.skipped)
        elif outcome.backup is not None:
            manifest = outcome.backup.manifest
            if manifest.duration_s > 0:
                self.state.backups.bytes_per_second = manifest.size_bytes / manifest.duration_s
            self.state.record(self.clock.time(), "backup", f"{tier} backup {manifest.id}")
        await self._refresh_backups()
        return outcome

    async def _refresh_backups(self) -> None:
        backups = await asyncio.to_thread(self.keeper.catalogue.scan)
        newest = self.keeper.catalogue.newest_by_tier(backups)
        self.state.backups.newest = {
            tier: (
                BackupSummary(
                    b.id, b.tier, b.created_at, b.manifest.size_bytes, b.manifest.file_size
                )
                if b
                else None
            )
            for tier, b in newest.items()
        }
        self.state.backups.count = len(backups)
        self.state.backups.total_bytes = sum(b.manifest.file_size for b in backups)

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
                reading.free_bytes / MIB,
                self.settings.disk_warn_percent,
                self.settings.disk_critical_percent,
            )
        try:
            self.state.database.size_bytes = self.settings.database.stat().st_size
            self.state.database.exists = True
        except FileNotFoundError:
            self.state.database.size_bytes = 0
            self.state.database.exists = False

    def _database_appeared(self) -> bool:
        """The bot has created the database since it was last seen missing: check it now."""
        return (
            self.state.database.integrity is Integrity.MISSING and self.settings.database.exists()
        )

    async def _check_integrity(self) -> None:
        async with self._data_lock:
            await self._check_integrity_locked()

    async def _check_and_heal(self) -> None:
        """Check the database and, if it must be recovered, recover it, under one hold of the
        data lock, so nothing (a restore, a backup) changes the files between verdict and act."""
        async with self._data_lock:
            await self._check_integrity_locked()
            reason = await self._recovery_reason()
            if reason is None:
                return
            result = await self._recover_locked(reason, self.state.database.detail or "")
            if result.fresh:
                await self._check_integrity_locked()
            else:
                await self._mark_restored(f"restored from backup {result.restored_from}")
        await self._refresh_backups()
        self.state.bot.consecutive_failures = 0

    async def _mark_restored(self, how: str) -> None:
        """The installed database passed integrity_check at install (restore.install_file): take
        that verdict instead of checking the same bytes again, so the bot is back sooner."""
        tables = await asyncio.to_thread(count_tables, self.settings.database)
        db = self.state.database
        db.integrity, db.detail = Integrity.OK, f"{how}; integrity_check ok at install"
        db.checked_at, db.check_seconds = self.clock.time(), 0.0
        db.tables, db.exists = tables, True
        db.size_bytes = self.settings.database.stat().st_size
        self._last_integrity_check = self.clock.monotonic()
        await self._vanished_tables(set(tables))

    async def _check_integrity_locked(self) -> None:
        self._last_integrity_check = self.clock.monotonic()
        result = await asyncio.to_thread(check_database, self.settings.database)
        db = self.state.database
        if result.state == "unknown":
            log.warning("%s; checking again in %.0f s", result.detail, RECHECK_AFTER)
            self._last_integrity_check = (
                self.clock.monotonic() - self.settings.integrity_check_every + RECHECK_AFTER
            )
            return
        db.checked_at = self.clock.time()
        db.check_seconds = result.seconds
        if result.state == "ok":
            vanished = await self._vanished_tables(set(result.tables))
            if vanished:
                result = DatabaseCheck(
                    "corrupt",
                    f"tables missing since the last check: {', '.join(sorted(vanished))} "
                    "(a foreign or stale -wal?)",
                    result.size_bytes,
                )
        db.detail = result.detail
        if result.state == "ok":
            db.integrity = Integrity.OK
            await self._note_database_seen()
            db.tables = result.tables
            db.size_bytes = result.size_bytes
            log.info(
                "database ok: %s rows in %s tables, %.1f MB, checked in %.2f s",
                sum(result.tables.values()),
                len(result.tables),
                result.size_bytes / MIB,
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

    # -- recovery -----------------------------------------------------------------------------

    async def _note_database_seen(self) -> None:
        """Remember that a database existed here: from now on a missing one is a loss."""
        if self._database_seen:
            return
        await asyncio.to_thread(update_state, self.layout.state_file, database_seen=True)
        self._database_seen = True

    async def _vanished_tables(self, current: set[str]) -> set[str]:
        """Compare with the tables recorded before; record any new ones."""
        state = await asyncio.to_thread(load_state, self.layout.state_file)
        known = set(state.get("known_tables", []))
        vanished = vanished_tables(known, current)
        if not vanished and not current <= known:
            await asyncio.to_thread(
                update_state, self.layout.state_file, known_tables=sorted(known | current)
            )
        return vanished

    async def _was_database_seen(self) -> bool:
        if self._database_seen is None:
            state = await asyncio.to_thread(load_state, self.layout.state_file)
            self._database_seen = bool(state.get("database_seen"))
        return self._database_seen

    async def _recovery_reason(self) -> str | None:
        db = self.state.database
        if db.integrity not in (Integrity.CORRUPT, Integrity.MISSING):
            return None
        return recovery_reason(
            db.integrity.value,
            db.detail or "",
            await self._was_database_seen(),
            self.state.backups.count > 0 or await self._offsite_has_backups(),
        )

    async def _recover_locked(self, reason: str, detail: str) -> RecoveryResult:
        """Stop the bot, then the blocking recovery in a thread; the bot is held throughout.
        The caller holds the data lock."""
        self._recovering = True
        try:
            self._event("recovery", f"recovering the database: {reason}", logging.ERROR)
            bot = self._bot
            if bot is not None and bot.returncode is None:
                await bot.stop(self.settings.bot_stop_timeout)
            result = await asyncio.to_thread(
                recover, self.layout, reason, detail, self.clock.time(), self._offsite_fetch()
            )
            # What we restored (or start afresh with) defines the tables from now on.
            await asyncio.to_thread(update_state, self.layout.state_file, known_tables=[])
            if result.fresh:
                await asyncio.to_thread(create_empty_database, self.layout.database)
                await asyncio.to_thread(
                    update_state,
                    self.layout.state_file,
                    fresh_start_at=self.clock.time(),
                    fresh_start_reason=result.summary(),
                )
            self.state.recovery.record(self.clock.time(), result)
            self._event(
                "recovery",
                result.summary(),
                logging.CRITICAL if result.fresh else logging.WARNING,
            )
            await self._alert(("🚨 " if result.fresh else "♻️ ") + result.summary())
        finally:
            self._recovering = False
        return result

    def _offsite_fetch(self) -> OffsiteFetch | None:
        """The offsite store's fetch, when one is configured (the recovery's last resort)."""
        store = self.offsite
        if store is None:
            return None
        return lambda path: store.fetch(None, path)

    async def _offsite_has_backups(self) -> bool:
        """A fresh-looking machine (no database, no local backups) with backups on the offsite
        branch has lost its disk: the data comes back from the branch."""
        if self.offsite is None or self.state.database.integrity is not Integrity.MISSING:
            return False
        entries = []
        for attempt, pause in enumerate((5.0, 15.0, 0.0), start=1):
            try:
                entries = await asyncio.to_thread(self.offsite.list)
                break
            except OffsiteError as error:
                # Deciding "first run" on a passing network error would start the bot empty.
                log.error("could not list offsite backups (attempt %d of 3): %s", attempt, error)
                if attempt == 3 or error.kind not in ("unreachable", "timeout", "busy"):
                    return False
                await self._sleep(pause)
        if entries:
            log.warning(
                "no database and no local backup, but %d offsite: a lost disk", len(entries)
            )
        return bool(entries)

    # -- operator requests (admin API) -----------------------------------------------------

    async def manual_backup(self, reason: str) -> tuple[Outcome | None, str | None]:
        outcome = await self._backup("manual", reason, proceed=lambda: True)
        return outcome, None if outcome else self.state.backups.last_error

    async def manual_restore(self, wanted: str, from_git: bool = False) -> tuple[bool, str]:
        """Stop the bot, restore the chosen backup (the live database is quarantined, never
        deleted), check it, let the bot relaunch."""
        await self._data_lock.acquire()
        self._recovering = True
        try:
            bot = self._bot
            if bot is not None and bot.returncode is None:
                await bot.stop(self.settings.bot_stop_timeout)
            try:
                summary = await asyncio.to_thread(self._restore_blocking, wanted, from_git)
            except (RestoreError, OffsiteError, OSError) as error:
                self._event("restore", f"restore failed: {error}", logging.ERROR)
                await self._check_integrity_locked()  # the monitor heals what is left, if need be
                return False, str(error)
            await asyncio.to_thread(update_state, self.layout.state_file, known_tables=[])
            self._event("restore", summary, logging.WARNING)
        finally:
            self._recovering = False
            self._data_lock.release()
        await self._refresh_backups()
        await self._check_integrity()
        self.state.bot.consecutive_failures = 0
        await self._alert(f"♻️ {summary} (by an operator)")
        return True, summary

    def _restore_blocking(self, wanted: str, from_git: bool) -> str:
        if from_git:
            if self.offsite is None:
                raise RestoreError("no offsite store configured (BACKUP_GIT_URL)")
            return restore_from_offsite(self.layout, self.offsite, wanted, self.clock.time())
        backup = choose(self.keeper.catalogue, wanted)
        return restore_chosen(self.layout, backup, self.clock.time()).summary()

    # -- offsite ------------------------------------------------------------------------------

    def _build_offsite(self) -> OffsiteStore | None:
        try:
            store = OffsiteStore.from_settings(self.settings)
        except OffsiteError as error:
            self.state.offsite.last_error = str(error)
            self.state.offsite.last_error_kind = error.kind
            log.error("offsite backups are off: %s", error)
            return None
        self.state.offsite.enabled = store is not None
        return store

    async def _offsite_push_if_due(self) -> None:
        store, offsite = self.offsite, self.state.offsite
        if store is None or self._stopping.is_set():
            return
        now = self.clock.time()
        if offsite.next_try_at is not None and now < offsite.next_try_at:
            return
        if offsite.newest_at is None and offsite.last_success_at is None:
            recorded = (await asyncio.to_thread(load_state, self.layout.state_file)).get("offsite")
            if recorded:
                offsite.newest_id = recorded.get("id")
                offsite.newest_at = recorded.get("created_at")
        if not schedule.offsite_due(now, offsite.newest_at, self.settings.backup_offsite_every):
            return
        local = await asyncio.to_thread(self.keeper.catalogue.scan)
        if not local:
            return
        newest = local[-1]
        if offsite.newest_at is not None and newest.created_at <= offsite.newest_at:
            return  # nothing newer than what is offsite already
        try:
            entry = await asyncio.to_thread(store.push, newest)
        except OffsiteError as error:
            offsite.failures += 1
            offsite.last_error, offsite.last_error_kind = str(error), error.kind
            offsite.next_try_at = now + backoff.delay(offsite.failures, 60.0, 3600.0)
            self._event(
                "offsite", f"offsite push failed ({offsite.failures}): {error}", logging.ERROR
            )
            if backoff.alert_due(offsite.failures):
                await self._alert(f"⚠️ offsite backups failing {offsite.failures} times: {error}")
            return
        offsite.failures, offsite.last_error, offsite.next_try_at = 0, None, None
        offsite.newest_id, offsite.newest_at = entry.id, entry.created_at
        offsite.last_success_at = self.clock.time()
        await asyncio.to_thread(
            update_state,
            self.layout.state_file,
            offsite={"id": entry.id, "created_at": entry.created_at},
        )
        self._event("offsite", f"backup {entry.id} pushed offsite ({entry.parts} parts)")

    # -- restore drills -------------------------------------------------------------------------

    async def _drill_if_due(self) -> None:
        if self.state.backups.count == 0 or self._stopping.is_set():
            return
        last = self.state.drill.last_at
        if last is None:
            last = (await asyncio.to_thread(load_state, self.layout.state_file)).get("drill_at")
            self.state.drill.last_at = last
        if not schedule.drill_due(self.clock.time(), last):
            return
        async with self._data_lock:
            results = await asyncio.to_thread(run_drill, self.keeper.catalogue, self.layout.run)
        self.state.drill.last_at = self.clock.time()
        self.state.drill.results = [result.as_dict() for result in results]
        await asyncio.to_thread(
            update_state, self.layout.state_file, drill_at=self.state.drill.last_at
        )
        failed = [r for r in results if not r.ok]
        if failed:
            text = "; ".join(f"{r.tier} {r.id}: {r.detail}" for r in failed)
            self._event("drill", f"restore drill FAILED: {text}", logging.ERROR)
            await self._alert(f"⚠️ restore drill failed: {text}")
        else:
            self._event("drill", f"restore drill passed ({len(results)} backups restored and read)")

    async def _alert(self, text: str) -> None:
        """Tell the admins (ADMIN_IDS) on Telegram, in the background: an unreachable Telegram
        must not keep the bot held or the data lock taken."""
        if self._alerter is not None:
            task = asyncio.create_task(self._alerter.send(text))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

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
