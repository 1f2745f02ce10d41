"""Slow upkeep, apart from the checks and backups so it never delays them: offsite pushes (with
the one backoff, and an alert after repeated failures), the update journal's (its offsite
pushes every JOURNAL_OFFSITE_EVERY, its pruning once backups cover it) and the daily restore
drill."""

from __future__ import annotations

import asyncio
import functools
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from conf.units import MIB
from watchdog.data.catalogue import Backup, Catalogue
from watchdog.data.drill import DrillResult, run_drill
from watchdog.data.erasure_copies import erasure_record_changed_at
from watchdog.data.journal import JournalScan, remove_segments, scan_journal
from watchdog.offsite import OffsiteError
from watchdog.rules import backoff, journal, leader, schedule
from watchdog.runtime.context import RuntimeContext

if TYPE_CHECKING:
    from watchdog.offsite.store import OffsiteStore

log = logging.getLogger(__name__)

OFFSITE_RETRY_FIRST, OFFSITE_RETRY_MAX = 60.0, 3600.0
"""Backoff for a failed push: 1 min doubling to an hour."""
JOURNAL_RETRY_FIRST, JOURNAL_RETRY_MAX = 30.0, 1800.0
"""Backoff for a failed journal push: 30 s doubling to half an hour."""
JOURNAL_PRUNE_EVERY = 60.0
"""Seconds between two readings (and prunings) of the journal when no backup came."""


@dataclass(frozen=True)
class Pruned:
    scan: JournalScan
    until: float | None
    covered: tuple[int, ...]
    over_bound: tuple[int, ...]


class Maintenance:
    def __init__(
        self, ctx: RuntimeContext, catalogue: Catalogue, offsite: OffsiteStore | None
    ) -> None:
        self.ctx = ctx
        self.catalogue = catalogue
        self.offsite = offsite
        self.offsite_retry = backoff.Retry(OFFSITE_RETRY_FIRST, OFFSITE_RETRY_MAX)
        self.journal_retry = backoff.Retry(JOURNAL_RETRY_FIRST, JOURNAL_RETRY_MAX)
        self._pruned_for: tuple[tuple[float | None, float | None, int], float] | None = None
        """What the last pruning saw (newest backup, newest offsite, journal pushes) and when."""
        ctx.state.journal.offsite_enabled = offsite is not None

    def leads(self) -> bool:
        """Offsite pushes and drills of a shared database are the backup leader's alone."""
        return leader.may_back_up(self.ctx.state.leader.role)

    async def tick(self) -> None:
        """One round; a failure of one job is logged and the next round goes on."""
        jobs = (self.push_offsite_if_due, self.prune_journal_if_due, self.push_journal_if_due)
        for work in (*jobs, self.drill_if_due):
            try:
                await work()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                self.ctx.events.record(
                    "maintenance", f"{work.__name__} failed: {error!r}", logging.ERROR
                )

    async def push_offsite_if_due(self) -> None:
        ctx, store, offsite = self.ctx, self.offsite, self.ctx.state.offsite
        if store is None or ctx.stop_requested or not self.leads():
            return
        now = ctx.clock.time()
        if not self.offsite_retry.ready(now):
            return
        if offsite.newest_at is None and offsite.last_success_at is None:
            remembered = ctx.remembered.load()
            offsite.newest_id = remembered.offsite_id
            offsite.newest_at = remembered.offsite_created_at
        on_time = schedule.offsite_due(now, offsite.newest_at, ctx.settings.backup_offsite_every)
        if not on_time and ctx.database.keeps_a_file:
            return  # a file's erasures go offsite with the journal
        local = await asyncio.to_thread(self.catalogue.scan)
        if not local:
            return
        newest = local[-1]
        if offsite.newest_at is not None and newest.created_at <= offsite.newest_at:
            return  # nothing newer than what is offsite already
        if not on_time and not self.erasures_not_offsite(local, offsite.newest_id):
            return
        held = self.rotation_hold()
        offsite.rotation_held_since = held
        try:
            if held is None:
                entry = await asyncio.to_thread(store.push, newest)
            else:
                entry = await asyncio.to_thread(functools.partial(store.push, rotate=False), newest)
        except OffsiteError as error:
            self.offsite_retry.failed(now)
            offsite.failures_total += 1
            offsite.failures, offsite.next_try_at = (
                self.offsite_retry.failures,
                self.offsite_retry.next_at,
            )
            offsite.last_error, offsite.last_error_kind = str(error), error.kind
            ctx.events.record(
                "offsite", f"offsite push failed ({offsite.failures}): {error}", logging.ERROR
            )
            if backoff.alert_due(offsite.failures):
                ctx.events.alert(f"⚠️ offsite backups failing {offsite.failures} times: {error}")
            return
        self.offsite_retry.succeeded()
        offsite.failures, offsite.last_error, offsite.next_try_at = 0, None, None
        offsite.newest_id, offsite.newest_at = entry.id, entry.created_at
        offsite.last_success_at = ctx.clock.time()
        offsite.refused = [p.as_dict() for p in getattr(store, "last_refused", ())]
        await ctx.remembered.update_async(offsite_id=entry.id, offsite_created_at=entry.created_at)
        ctx.events.record("offsite", f"backup {entry.id} pushed offsite ({entry.parts} parts)")
        if held is not None:
            ctx.events.record(
                "offsite",
                "offsite rotation is held since a fresh start: every older backup stays on the "
                "branch until `python -m watchdog offsite-release`",
                logging.WARNING,
            )
        if offsite.refused:
            names = ", ".join(f"{r['id']} ({r['kind']})" for r in offsite.refused)
            ctx.events.record(
                "offsite",
                f"packages on the branch not made by this key, left untouched: {names}",
                logging.WARNING,
            )

    # -- the update journal ---------------------------------------------------------------

    async def prune_journal_if_due(self) -> None:
        """Read the journal (for /health and the disk guard) and remove the closed segments
        the backups cover, or past JOURNAL_MAX_MB the oldest ones (loudly): after every new
        backup, every backup offsite, and once a minute."""
        ctx = self.ctx
        now = ctx.clock.time()
        marks = (
            ctx.state.backups.last_backup_at,
            ctx.state.offsite.newest_at,
            ctx.state.journal.pushes,  # a push: /health's journal measured again
        )
        last = self._pruned_for
        if last is not None and last[0] == marks and now - last[1] < JOURNAL_PRUNE_EVERY:
            return
        self._pruned_for = (marks, now)
        async with ctx.data_lock:
            pruned = await asyncio.to_thread(self.prune_journal, now)
        self.report_pruned(pruned, now)

    def prune_journal(self, now: float) -> Pruned:
        """Blocking: one reading and pruning of the journal (the effect of ``rules.journal``)."""
        ctx = self.ctx
        folder = ctx.layout.journal
        scan = scan_journal(folder)
        local = [b.created_at for b in self.catalogue.scan()]
        offsite_at = ctx.state.offsite.newest_at
        if offsite_at is None:
            offsite_at = ctx.remembered.load().offsite_created_at
        until = journal.covered_until(local, offsite_at, bool(ctx.settings.backup_git_url), now)
        max_bytes = int(ctx.settings.journal_max_mb * MIB)
        plan = journal.prune_plan(scan.segments, until, scan.total_bytes, max_bytes)
        removed = set(remove_segments(folder, plan)) if plan.numbers else set()
        if removed:
            scan = scan_journal(folder)
        covered = tuple(n for n in plan.covered if n in removed)
        over = tuple(n for n in plan.over_bound if n in removed)
        return Pruned(scan, until, covered, over)

    def report_pruned(self, pruned: Pruned, now: float) -> None:
        ctx, state, scan = self.ctx, self.ctx.state.journal, pruned.scan
        if pruned.covered:
            ctx.events.record(
                "journal", f"journal: {len(pruned.covered)} segments removed, held by backups"
            )
        if pruned.over_bound:
            offsite = bool(ctx.settings.backup_git_url)
            message = (
                f"JOURNAL PAST ITS BOUND: {len(pruned.over_bound)} segments removed that no "
                f"{'offsite ' if offsite else ''}backup holds yet (JOURNAL_MAX_MB="
                f"{ctx.settings.journal_max_mb:g}); their updates are no longer on this disk"
                + (" (their journal packages stay on the branch)" if state.offsite_enabled else "")
            )
            state.bound_pruned += len(pruned.over_bound)
            state.bound_pruned_at, state.bound_message = now, message
            ctx.events.record("journal", message, logging.ERROR)
            ctx.events.alert(f"⚠️ {message}")
        state.pruned += len(pruned.covered) + len(pruned.over_bound)
        state.bytes, state.segments = scan.total_bytes, len(scan.segments)
        state.oldest_at, state.newest_at = scan.oldest_at, scan.newest_at
        state.problems, state.covered_until, state.measured_at = scan.problems, pruned.until, now

    async def push_journal_if_due(self) -> None:
        """The journal's new lines offsite, every JOURNAL_OFFSITE_EVERY when they changed
        (the one backoff after failures; an alert after repeated ones)."""
        ctx, store, state = self.ctx, self.offsite, self.ctx.state.journal
        if store is None or ctx.stop_requested or not self.leads():
            return
        now = ctx.clock.time()
        every = ctx.settings.journal_offsite_every
        erased_at = await asyncio.to_thread(erasure_record_changed_at, ctx.layout)
        if not self.journal_retry.ready(now) or not journal.push_due(
            now, state.last_push_at, every, changed=True, erased_at=erased_at
        ):
            return
        try:
            pushed = await asyncio.to_thread(store.push_journal, ctx.layout.journal, now)
        except OffsiteError as error:
            self.journal_retry.failed(now)
            state.push_failures = self.journal_retry.failures
            state.next_push_at = self.journal_retry.next_at
            state.last_push_error = str(error)
            ctx.events.record(
                "journal",
                f"journal push offsite failed ({state.push_failures}): {error}",
                logging.ERROR,
            )
            if backoff.alert_due(state.push_failures):
                ctx.events.alert(f"⚠️ journal offsite pushes failing {state.push_failures} times")
            return
        self.journal_retry.succeeded()
        state.push_failures, state.last_push_error, state.next_push_at = 0, None, None
        if pushed is None:  # nothing new: all of it is offsite already
            state.pushed_newest_at = state.newest_at
            return
        state.pushes += 1
        state.last_push_at = None if pushed.more else ctx.clock.time()
        state.last_push_seconds = round(pushed.seconds, 3)
        newest = [t for t in (state.pushed_newest_at, pushed.newest_at) if t is not None]
        state.pushed_newest_at = max(newest) if newest else None
        ctx.events.note(
            "journal",
            f"journal package {pushed.id} offsite: {pushed.updates} lines, "
            f"{pushed.stored_bytes} bytes stored",
        )
        self._pruned_for = None  # read the journal again now: /health shows what was pushed
        await self.prune_journal_if_due()

    @staticmethod
    def erasures_not_offsite(local: list[Backup], offsite_id: str | None) -> bool:
        """The newest local backup holds erasures the newest one offsite lacks (both as their
        manifests say; a backup offsite but no longer here counts as holding none)."""
        held = {b.id: schedule.erasure_rows_of(b.manifest.extra) for b in local}
        return schedule.offsite_erasure_due(held[local[-1].id], held.get(offsite_id or ""))

    def rotation_hold(self) -> float | None:
        """When the fresh start that holds rotation happened (None: rotation runs). After a
        fresh start the branch may hold the only good copies: nothing rotates them away
        until an operator says so."""
        recovery = self.ctx.state.recovery
        if recovery.fresh_start_at is not None:
            return recovery.fresh_start_at
        return self.ctx.remembered.load().fresh_start_at

    def release_rotation_hold(self) -> float | None:
        """An operator's release (the admin API's ``POST /offsite/release``): forget the fresh
        start, so pushes rotate again. Returns when the released hold began (None: none)."""
        ctx, held = self.ctx, self.rotation_hold()
        ctx.state.recovery.fresh_start_at = ctx.state.recovery.fresh_start_reason = None
        ctx.state.offsite.rotation_held_since = None
        ctx.remembered.update(fresh_start_at=None, fresh_start_reason=None)
        if held is not None:
            ctx.events.record("offsite", "offsite rotation released by an operator")
        return held

    async def drill_if_due(self) -> None:
        ctx = self.ctx
        if ctx.state.backups.count == 0 or ctx.stop_requested or not self.leads():
            return
        drill = ctx.state.drill
        if drill.last_at is None:
            drill.last_at = ctx.remembered.load().drill_at
        if not schedule.drill_due(ctx.clock.time(), drill.last_at):
            return
        await self.drill()

    async def drill(self, by: str = "") -> list[DrillResult]:
        """A restore drill now, recorded and alerted on; ``by`` says who asked, in the event
        (``" (asked from the command line)"``; empty for the scheduled one)."""
        ctx, drill = self.ctx, self.ctx.state.drill
        async with ctx.data_lock:
            results = await asyncio.to_thread(
                run_drill, self.catalogue, ctx.layout.run, ctx.database
            )
        drill.last_at = ctx.clock.time()
        drill.results = [result.as_dict() for result in results]
        await ctx.remembered.update_async(drill_at=drill.last_at)
        failed = [r for r in results if not r.ok]
        if failed:
            text = "; ".join(f"{r.tier} {r.id}: {r.detail}" for r in failed)
            ctx.events.record("drill", f"restore drill{by} FAILED: {text}", logging.ERROR)
            ctx.events.alert(f"⚠️ restore drill failed: {text}")
        else:
            ctx.events.record(
                "drill", f"restore drill{by} passed ({len(results)} backups restored and read)"
            )
        return results
