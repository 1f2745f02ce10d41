"""The guard of the data: readings, integrity checks, and recovery end to end.

:meth:`DataGuard.check_and_heal` owns the whole path — detect → stop the bot → quarantine →
choose → install → salvage → relaunch → report — in this order:

1. detect: ``check_locked`` (``data.database.check_database``, read by
   ``rules.recovery.integrity_verdict``) and ``_recovery_reason`` (``rules.recovery``);
2. stop: ``bot.held(...)`` stops the bot and keeps it down;
3. quarantine, choose, install: ``data.recovery.recover`` (blocking, in a thread):
   every candidate — each local backup newest first, then each offsite one — must prove itself
   (sha256, the bot's schema and nothing more, integrity_check; ``data.candidates``) before it
   is installed; each one refused is named in the result, the health report and the alert;
4. report: the state and the event log;
5. relaunch: leaving the hold lets the supervisor launch the bot on the restored file, which it
   first completes with the journal's updates it lacks (its start-up replay), and reports what
   it replayed (``bot.expect_replay_report``): then the state, the event log and the admins'
   alert say it;
7. salvage: the damaged file read and merged with the bot back (``runtime.salvage_runner``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from conf.units import MIB
from watchdog.data.cleanstop import forget_record, read_facts, take_record, write_record
from watchdog.data.database import (
    DatabaseCheck,
    check_database,
    count_tables,
    create_empty_database,
    quick_check_database,
    read_schema,
)
from watchdog.data.disk import DiskReading, read_disk
from watchdog.data.recovery import RecoveryResult, recover
from watchdog.data.replay_report import ReplayOutcome
from watchdog.rules.recovery import integrity_verdict, recovery_reason, vanished_tables
from watchdog.rules.startup import proof_at_stop, start_check
from watchdog.rules.state import Integrity
from watchdog.runtime.context import RuntimeContext
from watchdog.runtime.early_copy import early_deploy_copy, keep_if_sound
from watchdog.runtime.jobs import BackupJobs
from watchdog.runtime.lost_disk import offsite_has_backups
from watchdog.runtime.salvage_runner import BackgroundSalvage
from watchdog.runtime.supervision import BotSupervisor

if TYPE_CHECKING:
    from watchdog.offsite.store import OffsiteStore

log = logging.getLogger(__name__)

RECHECK_AFTER = 5.0
"""Seconds before checking again a database that could not be checked (busy, locked)."""


class DataGuard:
    def __init__(
        self,
        ctx: RuntimeContext,
        bot: BotSupervisor,
        jobs: BackupJobs,
        offsite: OffsiteStore | None,
    ) -> None:
        self.ctx = ctx
        self.bot = bot
        self.jobs = jobs
        self.offsite = offsite
        self.salvage = BackgroundSalvage(ctx)
        self.last_check: float | None = None
        """Monotonic time of the last integrity check."""
        self.full_check_passed = False
        """A full check passed on the live file in this life, and nothing since made one owed."""
        self.installed_by_hash = False
        """The live file was installed in this life, proven by its hash; not yet fully checked."""
        self.trust_hash = True
        """False after a file installed by its hash failed its full check: the next recovery
        checks every candidate fully (the manifest may have been forged with the file)."""
        # The effects, as attributes so a test can put fakes in their place.
        self.read_disk = read_disk
        self.check_file = check_database
        self.quick_check_file = self._start_up_quick_check
        self.start_up_workers: int | None = None
        """The start-up check's workers: one when the early deploy copy takes the other core
        (the whole ``quick_check`` then costs less than its split), else one a core."""
        self.count_tables = count_tables
        self.recover_files = recover
        self.create_empty = create_empty_database
        self.expect_replay_report = bot.expect_replay_report

    # -- readings -----------------------------------------------------------------------------

    async def measure(self) -> None:
        ctx = self.ctx
        await measure_disk(ctx, self.read_disk)
        database = ctx.state.database
        try:
            database.size_bytes = ctx.settings.database.stat().st_size
            database.exists = True
        except FileNotFoundError:
            database.size_bytes = 0
            database.exists = False

    def database_appeared(self) -> bool:
        """The bot has created the database since it was last seen missing: check it now."""
        return (
            self.ctx.state.database.integrity is Integrity.MISSING
            and self.ctx.settings.database.exists()
        )

    def check_due(self) -> bool:
        database = self.ctx.state.database
        due_at = (self.last_check or 0) + self.ctx.settings.integrity_check_every
        vanished = database.integrity is Integrity.OK and not database.exists
        return (
            self.ctx.clock.monotonic() >= due_at
            or self.database_appeared()
            or vanished
            or database.integrity is Integrity.UNKNOWN
        )

    async def tick(self) -> None:
        """One round of the monitor: readings, then a check (and healing) when due."""
        await self.measure()
        if self.check_due():
            await self.check_and_heal()

    # -- checks -------------------------------------------------------------------------------

    async def check(self) -> None:
        async with self.ctx.data_lock:
            await self.check_locked()

    def _start_up_quick_check(self, path: Path) -> DatabaseCheck:
        """Only ever the start-up check, before the launch: the bot is held back (``still``)."""
        return quick_check_database(path, still=True, workers=self.start_up_workers)

    def _due_now(self) -> None:
        self.last_check = self.ctx.clock.monotonic() - self.ctx.settings.integrity_check_every

    async def check_locked(self, quick: bool = False) -> None:
        """A full check (``quick``: ``quick_check``, the full one then owed and due at once)."""
        ctx = self.ctx
        self.last_check = ctx.clock.monotonic()
        check = self.quick_check_file if quick else self.check_file
        result = await asyncio.to_thread(check, ctx.settings.database)
        database = ctx.state.database
        if result.state == "unknown":
            log.warning("%s; checking again in %.0f s", result.detail, RECHECK_AFTER)
            self.last_check = (
                ctx.clock.monotonic() - ctx.settings.integrity_check_every + RECHECK_AFTER
            )
            return
        database.checked_at = ctx.clock.time()
        database.check_seconds = result.seconds
        known = set(ctx.remembered.load().known_tables)
        names = result.table_names
        state, detail = integrity_verdict(result.state, result.detail, names, known)
        database.detail = detail
        if state == "ok":
            database.integrity = Integrity.OK
            await self._remember_tables(names)
            if result.names is None:  # else not counted: the full check after launch counts
                database.tables = result.tables
            database.size_bytes = result.size_bytes
            if quick:
                database.full_check_owed, self.full_check_passed = "a quick start", False
                database.detail = f"{detail}; the full check runs with the bot up"
                self._due_now()
            else:
                database.full_check_owed, self.full_check_passed = None, True
                self.installed_by_hash, self.trust_hash = False, True
            log.info(
                "database ok (%s): %s in %s tables, %.1f MB, checked in %.2f s",
                "quick_check" if quick else "integrity_check",
                "rows not counted" if result.names else f"{sum(result.tables.values())} rows",
                len(names),
                result.size_bytes / MIB,
                result.seconds,
            )
        elif state == "missing":
            database.integrity = Integrity.MISSING
            database.tables = {}
            log.info("no database at %s yet: the bot will create it", ctx.settings.database)
        else:
            if self.installed_by_hash and not quick:
                log.error(
                    "the file installed on the proof of its hash failed its full check: the "
                    "next recovery checks every candidate fully"
                )
                self.trust_hash = False
            database.full_check_owed, self.full_check_passed = None, False
            self.installed_by_hash = False
            first_report = database.integrity is not Integrity.CORRUPT
            database.integrity = Integrity.CORRUPT
            if first_report:
                ctx.events.record("database", f"database failed its check: {detail}", logging.ERROR)

    async def _remember_tables(self, current: set[str]) -> None:
        """A database is here (so a missing one later is a loss); its tables are the known ones."""
        remembered = self.ctx.remembered.load()
        known = set(remembered.known_tables)
        changes: dict[str, object] = {}
        if not remembered.database_seen:
            changes["database_seen"] = True
        if not vanished_tables(known, current) and not current <= known:
            changes["known_tables"] = sorted(known | current)
        if changes:
            await self.ctx.remembered.update_async(**changes)

    async def mark_restored(
        self, how: str, check_deferred: bool = False, rows: dict[str, int] | None = None
    ) -> bool:
        """The installed database was proven at install: take that verdict instead of checking
        the same bytes again before the bot is back. ``check_deferred``: it was proven by the
        sha256 of bytes a full check passed on when they were backed up (not checked again at
        install); the full check of the installed file is then made due at once, and runs with
        the bot up — a failure is a new recovery. False when the installed file cannot even be
        counted: it is then checked fully at once (and found corrupt)."""
        ctx = self.ctx
        try:
            if rows is None:
                tables = await asyncio.to_thread(self.count_tables, ctx.settings.database)
            else:  # the manifest's counts: only see that the file opens (a count of 1 GB: 1 s)
                await asyncio.to_thread(read_schema, ctx.settings.database)
                tables = dict(rows)
        except sqlite3.DatabaseError as error:
            log.error("the installed database cannot be read (%s): checking it fully now", error)
            self.installed_by_hash = check_deferred
            await self.check_locked()
            return ctx.state.database.integrity is Integrity.OK
        database = ctx.state.database
        database.integrity, database.exists = Integrity.OK, True
        database.checked_at, database.check_seconds = ctx.clock.time(), 0.0
        database.tables = tables
        with contextlib.suppress(FileNotFoundError):
            database.size_bytes = ctx.settings.database.stat().st_size
        await self._remember_tables(set(tables))
        if check_deferred:
            database.detail = (
                f"{how}; proven by sha256 at install (those bytes passed integrity_check when "
                "backed up); the full check runs with the bot up"
            )
            database.full_check_owed, self.installed_by_hash = "an install proven by its hash", True
            self.full_check_passed = False
            self._due_now()
        else:
            database.detail = f"{how}; integrity_check ok at install"
            database.full_check_owed, self.installed_by_hash = None, False
            self.full_check_passed, self.trust_hash = True, True
            self.last_check = ctx.clock.monotonic()
        return True

    # -- start and orderly stop -----------------------------------------------------------------

    async def start_up(self) -> None:
        """The check before the first launch: ``quick_check`` when the file is the one the last
        clean stop left (``rules.startup.start_check``), else the full check; healing if need be."""
        ctx = self.ctx
        record, problem = await asyncio.to_thread(take_record, ctx.layout)
        facts = await asyncio.to_thread(read_facts, ctx.settings.database)
        decision = start_check(record, problem, str(ctx.settings.database), facts)
        log.info(
            "start-up check: %s (%s)",
            "quick_check now, the full check with the bot up" if decision.quick else "full",
            decision.why,
        )
        copying = early_deploy_copy(ctx, self.jobs.keeper.catalogue, decision.quick)
        self.start_up_workers = 1 if copying is not None else None
        try:
            await self.check_and_heal(quick=decision.quick)
        finally:
            await keep_if_sound(ctx, copying)

    def record_clean_stop(self, bot_stopped: bool) -> None:
        """At an orderly stop, the bot stopped: what the file looks like, and what vouches for it
        (``rules.startup.proof_at_stop``). Nothing is recorded for a file that is not known to be
        sound, or while a recovery or a restore (what changes the file, holding the bot) is under
        way: the next start checks fully. A check, a backup or a drill under way only reads."""
        ctx = self.ctx
        sound = ctx.state.database.integrity is Integrity.OK
        if not bot_stopped or not sound or self.bot.holding:
            forget_record(ctx.layout)
            return
        proof = proof_at_stop(self.full_check_passed, self.installed_by_hash)
        try:
            record = write_record(ctx.layout, proof, ctx.clock.time())
        except OSError as error:
            log.warning("no clean-stop record (the next start checks fully): %s", error)
            forget_record(ctx.layout)
            return
        if record is not None:
            log.info("clean-stop record written (%s)", proof)

    # -- recovery -----------------------------------------------------------------------------

    async def check_and_heal(self, quick: bool = False) -> None:
        """Check the database and, if it must be recovered, recover it, under one hold of the
        data lock, so nothing (a restore, a backup) changes the files between verdict and act."""
        async with self.ctx.data_lock:
            await self.check_locked(quick)
            reason = await self._recovery_reason()
            if reason is None:
                return
            await self._heal_locked(reason, self.ctx.state.database.detail or "")
        await self.jobs.refresh()

    async def _heal_locked(self, reason: str, detail: str) -> RecoveryResult:
        ctx = self.ctx
        ctx.events.record("recovery", f"recovering the database: {reason}", logging.ERROR)
        await self.salvage.stop()  # a salvage under way stays pending; it runs again after
        async with self.bot.held("recovering"):
            result = await self._recover_held(reason, detail)
            if ctx.state.database.integrity is Integrity.CORRUPT and not self.trust_hash:
                # Installed on its hash, and not even readable: once more, checking fully.
                detail = ctx.state.database.detail or ""
                result = await self._recover_held("the installed backup failed its check", detail)
            self.bot.forget_failures()
        self.salvage.start()
        return result

    async def _recover_held(self, reason: str, detail: str) -> RecoveryResult:
        ctx = self.ctx
        result = await asyncio.to_thread(
            functools.partial(
                self.recover_files,
                ctx.layout,
                reason,
                detail,
                ctx.clock.time(),
                self.offsite,  # the last resort: every offsite backup, newest first
                trust_hash=self.trust_hash,
            )
        )
        # What we restored (or start afresh with) defines the tables from now on.
        await ctx.remembered.update_async(known_tables=[])
        if result.fresh:
            await asyncio.to_thread(self.create_empty, ctx.layout.database)
            await ctx.remembered.update_async(
                fresh_start_at=ctx.clock.time(), fresh_start_reason=result.summary()
            )
        recovered_at = ctx.clock.time()
        ctx.state.recovery.record(recovered_at, result)  # the replay's report comes with the bot
        level = logging.CRITICAL if result.fresh else logging.WARNING

        def replayed(replay: ReplayOutcome) -> None:
            ctx.state.recovery.replayed(ctx.clock.time(), replay, recovered_at)
            summary = f"{result.summary()}; {replay.summary()}"
            ctx.events.record("recovery", summary, level if replay.ok else logging.ERROR)
            ctx.events.alert(("🚨 " if result.fresh else "♻️ ") + summary)

        self.expect_replay_report(replayed)
        ctx.events.record(
            "recovery", f"{result.summary()}; the bot replays the journal as it starts", level
        )
        if result.fresh:
            await self.check_locked()
        else:
            await self.mark_restored(
                f"restored from backup {result.restored_from}", result.check_deferred, result.rows
            )
        return result

    async def _recovery_reason(self) -> str | None:
        database = self.ctx.state.database
        if database.integrity not in (Integrity.CORRUPT, Integrity.MISSING):
            return None
        return recovery_reason(
            database.integrity.value,
            database.detail or "",
            self.ctx.remembered.load().database_seen,
            self.ctx.state.backups.count > 0 or await self._offsite_has_backups(),
        )

    async def _offsite_has_backups(self) -> bool:
        return await offsite_has_backups(self.ctx, self.offsite)

    async def resume_salvage(self) -> None:
        """At start-up: salvages a stopped or killed watchdog left pending, once the bot is back."""
        if self.ctx.state.database.integrity is Integrity.OK:
            self.salvage.start()


async def measure_disk(ctx: RuntimeContext, read_disk: Callable[[Path], DiskReading]) -> None:
    """The disk under DATA_DIR (backups, journal) in the live state, logged past the warning."""
    reading = await asyncio.to_thread(read_disk, ctx.settings.data_dir)
    storage = ctx.state.storage
    storage.path = reading.path
    storage.disk_usage_percent = reading.percent
    storage.free_bytes = reading.free_bytes
    storage.total_bytes = reading.total_bytes
    storage.mount_point = reading.mount_point
    storage.persistent_disk = reading.persistent
    first = storage.measured_at is None
    storage.measured_at = ctx.clock.time()
    warn = ctx.settings.disk_warn_percent
    if first or reading.percent >= warn:
        log.log(
            logging.INFO if reading.percent < warn else logging.WARNING,
            "disk %s: %.1f%% used, %.0f MB free (warn %.0f%%, critical %.0f%%)",
            reading.mount_point,
            reading.percent,
            reading.free_bytes / MIB,
            warn,
            ctx.settings.disk_critical_percent,
        )
