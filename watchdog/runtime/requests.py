"""What an operator asks the running watchdog for, over the loopback admin API: a backup now, a
restore, a verification, a drill, the catalogue. The work itself is what the command does when
no watchdog runs (``data.restore.restore_requested``, ``runtime.actions``); here it runs in worker
threads, serialised with the watchdog's own work on the data, and is recorded in its events."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from watchdog.data.backups import Outcome
from watchdog.data.drill import DrillResult
from watchdog.data.replay_report import ReplayOutcome
from watchdog.data.restore import RestoreError, journal_set_aside, restore_and_tell
from watchdog.offsite import OffsiteError
from watchdog.runtime import actions
from watchdog.runtime.actions import RequestFailed
from watchdog.runtime.context import RuntimeContext
from watchdog.runtime.jobs import BackupJobs
from watchdog.runtime.supervision import BotSupervisor

if TYPE_CHECKING:
    from watchdog.offsite.store import OffsiteStore
    from watchdog.runtime.server_guard import Guard

log = logging.getLogger(__name__)

ASKED = " (asked from the command line)"
RESTORE_REPLAY_WAIT = 300.0
"""Seconds a restore's answer waits for the bot's report of its start-up replay; past them the
answer says it has none (the report, when it comes, still goes to /health's last_replay)."""
Note = Callable[[str], None]
"""Where a long request says what it is doing (the admin job's step, shown by the command)."""


class OperatorRequests:
    def __init__(
        self,
        ctx: RuntimeContext,
        bot: BotSupervisor,
        guard: Guard,
        jobs: BackupJobs,
        offsite: OffsiteStore | None,
        drill: Callable[[str], Awaitable[list[DrillResult]]] | None = None,
    ) -> None:
        self.ctx = ctx
        self._drill = drill
        self.bot = bot
        self.guard = guard
        self.jobs = jobs
        self.offsite = offsite

    async def manual_backup(self, reason: str) -> tuple[Outcome | None, str | None]:
        outcome = await self.jobs.backup("manual", reason, proceed=lambda: True)
        return outcome, None if outcome else self.ctx.state.backups.last_error

    async def manual_restore(
        self, wanted: str, from_git: bool = False, replay: bool = True
    ) -> tuple[bool, str]:
        """Stop the bot, restore the chosen backup (the live database is quarantined, never
        deleted), replay the journal onto it — or, ``replay`` False, set the journal aside: a
        restore made on purpose to an earlier state — let the bot relaunch. The backup was proven
        before it was installed (``prepare_backup``); a full check it still owes runs next, with
        the bot up: one check per restore."""
        ctx = self.ctx
        if not ctx.database.keeps_a_file:
            return False, (
                "the watchdog never restores over a server database: restore into an empty one "
                f"with python -m watchdog restore {wanted} --to postgresql://…"
            )
        if from_git and self.offsite is None:
            return False, "no offsite store configured (BACKUP_GIT_URL)"
        reported: asyncio.Future[ReplayOutcome] | None = None
        async with ctx.data_lock, self.bot.held("restoring"):
            try:
                summary, deferred = await asyncio.to_thread(
                    restore_and_tell,
                    ctx.layout,
                    wanted,
                    ctx.clock.time(),
                    self.offsite if from_git else None,
                )
            except (RestoreError, OffsiteError, OSError) as error:
                ctx.events.record("restore", f"restore failed: {error}", logging.ERROR)
                await self.guard.check_locked()  # the monitor heals what is left, if need be
                return False, str(error)
            await ctx.remembered.update_async(known_tables=[])
            if replay:  # by the bot, as it starts on the restored file
                reported = self.bot.expect_replay_report(
                    lambda outcome: ctx.state.recovery.replayed(ctx.clock.time(), outcome)
                )
            else:
                summary = f"{summary}; {journal_set_aside(ctx.layout, ctx.clock.time())}"
        await self.jobs.refresh()
        async with ctx.data_lock:  # proven at install; a check still owed runs with the bot up
            await self.guard.mark_restored(f"restored by an operator ({wanted})", deferred)
        self.bot.forget_failures()
        if reported is not None:
            outcome = await self.bot.reported_replay(reported, RESTORE_REPLAY_WAIT)
            summary = f"{summary}; {outcome.summary()}"
        ctx.events.record("restore", summary, logging.WARNING)
        ctx.events.alert(f"♻️ {summary} (by an operator)")
        return True, summary

    async def backup(self, tier: str, reason: str) -> actions.Answer:
        """A verified backup of ``tier`` now (``python -m watchdog backup``)."""
        outcome = await self.jobs.backup(tier, reason, proceed=lambda: True)
        if outcome is None or outcome.backup is None:
            raise RequestFailed(self.ctx.state.backups.last_error or f"no {tier} backup was taken")
        answer = actions.backup_answer(outcome)
        self.ctx.events.record("backup", f"{tier} backup {outcome.backup.id} taken{ASKED}")
        return answer

    async def verify(self, wanted: str | None, every: bool, note: Note) -> actions.Answer:
        """Re-hash and re-check backups, one at a time, each under the data lock (so retention
        cannot prune it mid-check) and never holding it between two."""
        ctx = self.ctx
        catalogue = self.jobs.keeper.catalogue
        chosen = await asyncio.to_thread(actions.chosen_backups, catalogue, wanted, every)
        if chosen is None:
            raise RequestFailed(f"no backup with id {wanted!r} (see `list`)")
        results = []
        for number, backup in enumerate(chosen, 1):
            note(f"[{number}/{len(chosen)}] verifying {backup.id}")
            async with ctx.data_lock:
                results.append(
                    await asyncio.to_thread(actions.verify_answer, backup, ctx.layout.run)
                )
        failed = [r for r in results if not r["ok"]]
        level = logging.ERROR if failed else logging.INFO
        ctx.events.record(
            "verify",
            f"{len(results) - len(failed)} of {len(results)} backups verified{ASKED}",
            level,
        )
        return {"results": results}

    async def drill(self) -> actions.Answer:
        if self._drill is None:
            raise RequestFailed("this watchdog runs no drills")
        return {"results": actions.drill_answer(await self._drill(ASKED))}

    async def catalogue(self, tier: str | None) -> list[actions.Answer]:
        return await asyncio.to_thread(actions.catalogue_answer, self.jobs.keeper.catalogue, tier)
