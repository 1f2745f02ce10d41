"""What an operator asks the running watchdog for, over the loopback admin API: a backup now, a
restore. The restore itself is ``data.restore.restore_requested``, the same function the CLI
calls when no watchdog runs; here it runs with the bot held."""

from __future__ import annotations

import asyncio
import logging

from watchdog.data.backups import Outcome
from watchdog.data.restore import RestoreError, journal_set_aside, restore_and_tell
from watchdog.offsite import OffsiteError, OffsiteStore
from watchdog.runtime.context import RuntimeContext
from watchdog.runtime.guard import DataGuard
from watchdog.runtime.jobs import BackupJobs
from watchdog.runtime.supervision import BotSupervisor

log = logging.getLogger(__name__)


class OperatorRequests:
    def __init__(
        self,
        ctx: RuntimeContext,
        bot: BotSupervisor,
        guard: DataGuard,
        jobs: BackupJobs,
        offsite: OffsiteStore | None,
    ) -> None:
        self.ctx = ctx
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
        if from_git and self.offsite is None:
            return False, "no offsite store configured (BACKUP_GIT_URL)"
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
            ctx.remembered.update(known_tables=[])
            summary = f"{summary}; {await self._journal_after_restore(replay)}"
            ctx.events.record("restore", summary, logging.WARNING)
        await self.jobs.refresh()
        async with ctx.data_lock:  # proven at install; a check still owed runs with the bot up
            await self.guard.mark_restored(f"restored by an operator ({wanted})", deferred)
        self.bot.forget_failures()
        ctx.events.alert(f"♻️ {summary} (by an operator)")
        return True, summary

    async def _journal_after_restore(self, replay: bool) -> str:
        if not replay:
            return journal_set_aside(self.ctx.layout, self.ctx.clock.time())
        outcome = await self.bot.replay_journal()
        self.ctx.state.recovery.last_replay = {"at": self.ctx.clock.time(), **outcome.as_dict()}
        return outcome.summary()
