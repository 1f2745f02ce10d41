"""Slow upkeep, apart from the checks and backups so it never delays them: offsite pushes (with
the one backoff, and an alert after repeated failures) and the daily restore drill."""

from __future__ import annotations

import asyncio
import functools
import logging

from watchdog.data.catalogue import Catalogue
from watchdog.data.drill import run_drill
from watchdog.offsite import OffsiteError, OffsiteStore
from watchdog.rules import backoff, schedule
from watchdog.runtime.context import RuntimeContext

log = logging.getLogger(__name__)

OFFSITE_RETRY_FIRST, OFFSITE_RETRY_MAX = 60.0, 3600.0
"""Backoff for a failed push: 1 min doubling to an hour."""


class Maintenance:
    def __init__(
        self, ctx: RuntimeContext, catalogue: Catalogue, offsite: OffsiteStore | None
    ) -> None:
        self.ctx = ctx
        self.catalogue = catalogue
        self.offsite = offsite
        self.offsite_retry = backoff.Retry(OFFSITE_RETRY_FIRST, OFFSITE_RETRY_MAX)

    async def tick(self) -> None:
        """One round; a failure of one job is logged and the next round goes on."""
        for work in (self.push_offsite_if_due, self.drill_if_due):
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
        if store is None or ctx.stop_requested:
            return
        now = ctx.clock.time()
        if not self.offsite_retry.ready(now):
            return
        if offsite.newest_at is None and offsite.last_success_at is None:
            remembered = ctx.remembered.load()
            offsite.newest_id = remembered.offsite_id
            offsite.newest_at = remembered.offsite_created_at
        if not schedule.offsite_due(now, offsite.newest_at, ctx.settings.backup_offsite_every):
            return
        local = await asyncio.to_thread(self.catalogue.scan)
        if not local:
            return
        newest = local[-1]
        if offsite.newest_at is not None and newest.created_at <= offsite.newest_at:
            return  # nothing newer than what is offsite already
        held = self.rotation_hold()
        offsite.rotation_held_since = held
        try:
            if held is None:
                entry = await asyncio.to_thread(store.push, newest)
            else:
                entry = await asyncio.to_thread(functools.partial(store.push, rotate=False), newest)
        except OffsiteError as error:
            self.offsite_retry.failed(now)
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
        ctx.remembered.update(offsite_id=entry.id, offsite_created_at=entry.created_at)
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
        if ctx.state.backups.count == 0 or ctx.stop_requested:
            return
        drill = ctx.state.drill
        if drill.last_at is None:
            drill.last_at = ctx.remembered.load().drill_at
        if not schedule.drill_due(ctx.clock.time(), drill.last_at):
            return
        async with ctx.data_lock:
            results = await asyncio.to_thread(run_drill, self.catalogue, ctx.layout.run)
        drill.last_at = ctx.clock.time()
        drill.results = [result.as_dict() for result in results]
        ctx.remembered.update(drill_at=drill.last_at)
        failed = [r for r in results if not r.ok]
        if failed:
            text = "; ".join(f"{r.tier} {r.id}: {r.detail}" for r in failed)
            ctx.events.record("drill", f"restore drill FAILED: {text}", logging.ERROR)
            ctx.events.alert(f"⚠️ restore drill failed: {text}")
        else:
            ctx.events.record(
                "drill", f"restore drill passed ({len(results)} backups restored and read)"
            )
