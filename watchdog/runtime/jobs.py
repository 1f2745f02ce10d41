"""Backups as the running watchdog takes them: scheduled tiers with a retry backoff, and the
deploy, restart and shutdown snapshots. Which tier is due is ``rules.schedule``'s decision; the
snapshot itself is ``data.backups.BackupKeeper``'s."""

from __future__ import annotations

import asyncio
import logging

from conf.units import MIB
from watchdog.data.backups import BackupKeeper, BackupSkipped, Outcome
from watchdog.data.snapshot import Proceed, SnapshotError
from watchdog.rules import deploy, leader, schedule
from watchdog.rules.backoff import Retry
from watchdog.rules.history import BackupPoint
from watchdog.rules.state import BackupSummary, Integrity
from watchdog.runtime.context import RuntimeContext
from watchdog.version import app_version

log = logging.getLogger(__name__)

BACKUP_RETRY_FIRST, BACKUP_RETRY_MAX = 60.0, 3600.0
"""Backoff for a scheduled backup that failed: 1 min, 2 min, 4 min … up to an hour."""
ASSUMED_BYTES_PER_SECOND = 50 * MIB
"""Backup speed assumed for the shutdown budget before one was measured."""


class BackupJobs:
    def __init__(self, ctx: RuntimeContext, keeper: BackupKeeper) -> None:
        self.ctx = ctx
        self.keeper = keeper
        self.retries: dict[str, Retry] = {}
        self.deploy_owed = False
        """A follower's deploy backup, put off until it leads (``rules.leader``)."""

    def leads(self) -> bool:
        """Whether this instance takes the database's backups (a follower skips quietly)."""
        return leader.may_back_up(self.ctx.state.leader.role)

    async def backup(
        self,
        tier: str,
        reason: str,
        *,
        proceed: Proceed | None = None,
        skip_if_unchanged: bool = False,
        lock_timeout: float | None = None,
    ) -> Outcome | None:
        """One backup, serialised with every other operation on the data; failures are reported,
        never raised. Unless told otherwise, a backup is abandoned as soon as a stop is requested,
        so shutdown never waits for a long scheduled one."""
        ctx = self.ctx
        try:
            await asyncio.wait_for(ctx.data_lock.acquire(), lock_timeout)
        except TimeoutError:
            log.warning("no %s backup: another backup is still running", tier)
            return None
        try:
            outcome = await asyncio.to_thread(
                self.keeper.take,
                tier,
                reason,
                ctx.clock.time(),
                proceed=proceed or (lambda: not ctx.stop_requested),
                skip_if_unchanged=skip_if_unchanged,
            )
        except (SnapshotError, BackupSkipped, OSError) as error:
            ctx.state.backups.failed(tier, f"{tier}: {error}", ctx.clock.time())
            ctx.events.record("backup", f"{tier} backup failed: {error}", logging.ERROR)
            outcome = None
        finally:
            ctx.data_lock.release()
        if outcome is not None:
            ctx.state.backups.last_error = None
            if outcome.skipped:
                log.info("%s backup skipped: %s", tier, outcome.skipped)
            elif outcome.backup is not None:
                manifest = outcome.backup.manifest
                if manifest.duration_s > 0:
                    ctx.state.backups.bytes_per_second = manifest.size_bytes / manifest.duration_s
                ctx.events.note("backup", f"{tier} backup {manifest.id}")
        await self.refresh()
        return outcome

    async def refresh(self) -> None:
        """The catalogue's summary in the live state (what /health says of backups)."""
        backups = await asyncio.to_thread(self.keeper.catalogue.scan)
        newest = self.keeper.catalogue.newest_by_tier(backups)
        summary = self.ctx.state.backups
        summary.newest = {
            tier: (
                BackupSummary(
                    b.id,
                    b.tier,
                    b.created_at,
                    b.manifest.size_bytes,
                    b.manifest.file_size,
                    b.manifest.duration_s,
                )
                if b
                else None
            )
            for tier, b in newest.items()
        }
        summary.count = len(backups)
        summary.total_bytes = sum(b.manifest.file_size for b in backups)
        self.ctx.state.history.note_backups(
            (
                BackupPoint(
                    b.created_at, b.id, b.tier, b.manifest.size_bytes, b.manifest.duration_s
                )
                for b in backups
            ),
            self.ctx.clock.time(),
        )

    async def scheduled(self) -> None:
        """Staged copies' proof first, then every tier that is due, each with its own retry
        backoff after a failure."""
        ctx = self.ctx
        await self.prove_staged()
        if ctx.state.database.integrity is not Integrity.OK or not self.leads():
            return
        if self.deploy_owed:
            await self.deploy_snapshot()
        now = ctx.clock.time()
        intervals = ctx.settings.intervals()
        backups = await asyncio.to_thread(self.keeper.catalogue.scan)
        newest_at = schedule.newest_trusted(
            now, [(b.tier, b.created_at) for b in backups], intervals
        )
        for tier in schedule.due_tiers(now, newest_at, intervals):
            if ctx.stop_requested:
                return
            retry = self.retries.setdefault(tier, Retry(BACKUP_RETRY_FIRST, BACKUP_RETRY_MAX))
            if not retry.ready(now):
                continue
            outcome = await self.backup(tier, "scheduled")
            if outcome is None:
                retry.failed(now)
            else:
                retry.succeeded()
            ctx.events.ping(ok=outcome is not None and outcome.backup is not None)
        await self.erasure_backup_if_due()

    async def erasure_backup_if_due(self) -> None:
        """An hourly backup off schedule when the database's own record of erasures (on
        PostgreSQL, its table) holds rows the newest backup lacks (``schedule.
        erasure_backup_due``); with the hourly tier's retry backoff after a failure."""
        ctx = self.ctx
        held_now = await asyncio.to_thread(ctx.database.erasure_rows)
        if held_now is None or ctx.stop_requested:
            return
        backups = await asyncio.to_thread(self.keeper.catalogue.scan)
        newest = schedule.erasure_rows_of(backups[-1].manifest.extra) if backups else None
        if not schedule.erasure_backup_due(held_now, newest):
            return
        now = ctx.clock.time()
        retry = self.retries.setdefault("hourly", Retry(BACKUP_RETRY_FIRST, BACKUP_RETRY_MAX))
        if not retry.ready(now):
            return
        outcome = await self.backup("hourly", "an erasure that no backup holds yet")
        if outcome is None:
            retry.failed(now)
        else:
            retry.succeeded()

    async def deploy_snapshot(self) -> None:
        """Before new code touches the data: when the app version changed, the ``deploy`` copy,
        staged (``rules.deploy``); its proof runs once the bot answers (:meth:`prove_staged`)."""
        ctx = self.ctx
        current = app_version()
        recorded = ctx.remembered.load().app_version
        start = deploy.at_start(current, recorded, ctx.state.database.integrity.value)
        if start.action in ("none", "wait"):
            return
        self.deploy_owed = not self.leads()
        if self.deploy_owed:
            return  # taken by this instance once it leads, the new version's first backup
        if start.action == "copy" and not ctx.database.stages_copies:
            outcome = await self.backup("deploy", start.why)
            if outcome is None or outcome.backup is None:
                ctx.events.record(
                    "backup", "no deploy backup: the new version starts without one", logging.ERROR
                )
        elif start.action == "copy":
            async with ctx.data_lock:
                try:
                    staged = await asyncio.to_thread(
                        self.keeper.stage,
                        "deploy",
                        start.why,
                        ctx.clock.time(),
                        proceed=lambda: not ctx.stop_requested,
                    )
                except (SnapshotError, BackupSkipped, OSError) as error:
                    ctx.state.backups.failed("deploy", f"deploy: {error}", ctx.clock.time())
                    ctx.events.record(
                        "backup",
                        f"no deploy backup: the new version starts without one ({error})",
                        logging.ERROR,
                    )
                    return
            ctx.events.note("backup", f"deploy copy {staged.id} made; verified with the bot up")
        await ctx.remembered.update_async(app_version=current)

    async def prove_staged(self) -> None:
        """The staged copies' proof, once the bot answers (``rules.deploy.may_verify``): each is
        counted by its tier, or set aside and said."""
        ctx, bot = self.ctx, self.ctx.state.bot
        if not deploy.may_verify(bot.phase.value, bot.launched_at, ctx.clock.time()):
            return
        staged = await asyncio.to_thread(self.keeper.staged)
        for copy in staged:
            if ctx.stop_requested:
                return
            async with ctx.data_lock:
                try:
                    proven = await asyncio.to_thread(
                        self.keeper.prove, copy, proceed=lambda: not ctx.stop_requested
                    )
                except SnapshotError as error:
                    log.info("proof of %s put off: %s", copy.id, error)
                    return
            if proven.backup is not None:
                ctx.events.record(
                    "backup", f"{copy.tier} backup {copy.id} verified ({proven.detail})"
                )
            else:
                message = (
                    f"{copy.tier} copy {copy.id} set aside, not counted: {proven.detail} "
                    f"(kept as {proven.set_aside})"
                )
                ctx.state.backups.failed(copy.tier, message, ctx.clock.time())
                ctx.events.record("backup", message, logging.ERROR)
                ctx.events.alert(f"⚠️ {message}")
            await self.refresh()

    async def restart_snapshot(self, reason: str) -> None:
        """Before relaunching: a ``restart`` backup, unless nothing changed since the newest one
        (so a crash loop does not fill the disk)."""
        if self.ctx.state.database.integrity is Integrity.OK and self.leads():
            await self.backup("restart", reason, skip_if_unchanged=True)

    async def shutdown_snapshot(self, remaining: float) -> None:
        """A ``shutdown`` backup if it fits in what is left of the shutdown budget."""
        ctx = self.ctx
        if not self.leads():
            return
        size = ctx.state.database.size_bytes
        speed = ctx.state.backups.bytes_per_second or ASSUMED_BYTES_PER_SECOND
        if not schedule.shutdown_snapshot_fits(remaining, size, speed):
            log.warning(
                "no shutdown backup: %.1f MB would not fit in the %.1f s left of SHUTDOWN_BUDGET",
                size / MIB,
                remaining,
            )
            return
        clock = ctx.clock
        deadline = clock.monotonic() + max(0.5, remaining - 1.0)
        await self.backup(
            "shutdown",
            "shutdown",
            proceed=lambda: clock.monotonic() < deadline,
            skip_if_unchanged=True,
            lock_timeout=max(0.1, deadline - clock.monotonic()),
        )
