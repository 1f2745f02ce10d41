"""The backup leadership of a shared server database, kept up to date in the live state
(``state.leader``): tried before the deploy backup, then on its own loop every few seconds
(``rules.leader.next_try_in``). Backups, drills, offsite pushes and the cleanup of scratch
databases ask ``rules.leader.may_back_up(state.leader.role)``; the others skip them quietly.
On SQLite there is no lock and the role stays ``sole``."""

from __future__ import annotations

import logging

from watchdog.data import server as pg
from watchdog.data.kinds import PostgresDatabase
from watchdog.data.leader_lock import LeaderLock
from watchdog.rules import leader as rules
from watchdog.rules.leader import Role
from watchdog.runtime.context import RuntimeContext

log = logging.getLogger(__name__)


class Leadership:
    def __init__(self, ctx: RuntimeContext, lock: LeaderLock | None = None) -> None:
        self.ctx = ctx
        kind = ctx.kind
        if lock is None and isinstance(kind, PostgresDatabase):
            lock = LeaderLock(kind.server)
        self.lock = lock
        self.failures = 0
        self.next_at = 0.0
        state = ctx.state.leader
        state.role = Role.SOLE if lock is None else Role.UNKNOWN
        state.detail = "the only watchdog of its SQLite file" if lock is None else "not tried yet"

    async def tick(self) -> None:
        """One try when due; never raises (a failure is the role ``unknown`` and its reason)."""
        if self.lock is None or self.ctx.clock.monotonic() < self.next_at:
            return
        await self.try_now()

    async def try_now(self) -> None:
        assert self.lock is not None
        ctx, state = self.ctx, self.ctx.state.leader
        before = state.role
        why = ""
        try:
            taken: bool | None = await self.lock.try_lead()
            self.failures = 0
        except pg.ServerError as error:
            taken, why = None, str(error)
            self.failures += 1
        role = rules.role_after_try(taken)
        where = self.lock.server.where
        state.holder = await self.lock.holder() if role is Role.FOLLOWER else None
        if role is Role.LEADER:
            state.detail = f"this instance holds the backup lock of {where}"
        elif role is Role.FOLLOWER:
            state.detail = f"another instance holds the backup lock of {where}"
        else:
            state.detail = why
        if role is not before:
            state.role, state.since = role, ctx.clock.time()
            self._said(before, role, why)
        self.next_at = ctx.clock.monotonic() + rules.next_try_in(role, self.failures)

    def _said(self, before: Role, role: Role, why: str) -> None:
        ctx, state = self.ctx, self.ctx.state.leader
        if role is Role.LEADER:
            state.changes += 1
            ctx.events.record("leader", "this instance now takes the backups (backup leader)")
        elif role is Role.FOLLOWER:
            who = f" ({state.holder})" if state.holder else ""
            ctx.events.record("leader", f"another instance takes the backups{who}")
        elif before is Role.LEADER:
            ctx.events.record(
                "leader", f"backup leadership lost ({why}); trying again", logging.WARNING
            )
        else:
            log.warning("backup leadership not known yet: %s", why)

    async def close(self) -> None:
        """At the very end of the shutdown: the lock is given back with the session."""
        if self.lock is not None:
            await self.lock.close()
