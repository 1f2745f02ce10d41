"""The guard of a database on a PostgreSQL server (``data.kinds.PostgresDatabase``).

Before the first launch and then on a schedule it probes the server (connection, version). A
probe that fails is one line — in the log, in /health (``database.detail``), to the admins once
per outage — and holds the bot (``Integrity.UNREACHABLE``: ``BotSupervisor.launchable``); the
next probe comes after the one backoff (``rules.server.probe_delay``). Nothing here writes to
the server: no file checks, quarantine, salvage or automatic install apply to it. A restore is
an operator's explicit command into an empty database (``python -m watchdog restore --to``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from watchdog.data import pgdump
from watchdog.data import server as pg
from watchdog.data.disk import read_disk
from watchdog.data.kinds import PostgresDatabase
from watchdog.rules import leader
from watchdog.rules import server as rules
from watchdog.rules.state import Integrity
from watchdog.runtime.context import RuntimeContext
from watchdog.runtime.guard import DataGuard, measure_disk
from watchdog.runtime.jobs import BackupJobs
from watchdog.runtime.supervision import BotSupervisor

if TYPE_CHECKING:
    from watchdog.offsite.store import OffsiteStore

log = logging.getLogger(__name__)

PROBE_EVERY = 30.0
"""Seconds between probes of a server that answered (INTEGRITY_CHECK_EVERY when shorter)."""


class ServerGuard:
    def __init__(self, ctx: RuntimeContext, bot: BotSupervisor, kind: PostgresDatabase) -> None:
        self.ctx = ctx
        self.bot = bot
        self.kind = kind
        self.read_disk = read_disk
        self.last_check: float | None = None
        self.failures = 0
        self.scratch_cleaned = False
        self.tool_checked = False
        """Whether pg_dump was checked against the server (once, at the first answer)."""
        database = ctx.state.database
        database.kind, database.path = kind.name, ""
        database.server = kind.describe()

    async def measure(self) -> None:
        """The disk (backups and the journal live there); the database is not a file of ours."""
        await measure_disk(self.ctx, self.read_disk)

    def database_appeared(self) -> bool:
        return False

    def check_due(self) -> bool:
        if self.last_check is None:
            return True
        if self.failures:
            wait = rules.probe_delay(self.failures)
        else:
            wait = min(PROBE_EVERY, self.ctx.settings.integrity_check_every)
        return self.ctx.clock.monotonic() >= self.last_check + wait

    async def tick(self) -> None:
        await self.measure()
        if self.check_due():
            await self.check_and_heal()

    async def start_up(self) -> None:
        await self.check_and_heal()

    async def resume_salvage(self) -> None:
        return None

    async def check(self) -> None:
        async with self.ctx.data_lock:
            await self.check_locked()

    async def check_and_heal(self, quick: bool = False) -> None:
        """Probe; there is no healing of a server database, only the report."""
        await self.check()

    async def check_locked(self, quick: bool = False) -> None:
        ctx, database = self.ctx, self.ctx.state.database
        self.last_check = ctx.clock.monotonic()
        try:
            found = await asyncio.to_thread(self.kind.probe)
        except pg.ServerError as error:
            self.failures += 1
            first = database.integrity is not Integrity.UNREACHABLE
            database.integrity, database.detail = Integrity.UNREACHABLE, str(error)
            database.checked_at = ctx.clock.time()
            wait = rules.probe_delay(self.failures)
            ctx.events.record(
                "database", f"{error}; bot held, trying again in {wait:.0f} s", logging.ERROR
            )
            if first:
                ctx.events.alert(f"🚨 {error}; the bot is held until the server answers")
            return
        back = database.integrity is Integrity.UNREACHABLE
        self.failures = 0
        database.integrity, database.exists = Integrity.OK, True
        database.size_bytes, database.checked_at = found.size_bytes, ctx.clock.time()
        database.check_seconds = found.seconds
        database.server = {**self.kind.describe(), "version": found.version}
        database.detail = f"PostgreSQL {found.version} answered in {found.seconds:.2f} s"
        if not self.tool_checked:
            self.tool_checked = True
            problem = await asyncio.to_thread(pgdump.dump_tool_problem, found.version_num)
            if problem:
                ctx.events.record("backups", f"no backup possible: {problem}", logging.ERROR)
        if back:
            ctx.events.record("database", f"{self.kind.server.where} answers again")
            ctx.events.alert(f"✅ {self.kind.server.where} answers again")
        if not self.scratch_cleaned and leader.may_back_up(ctx.state.leader.role):
            self.scratch_cleaned = True  # by the leader only: a follower's would drop its proofs
            for name in await asyncio.to_thread(self.kind.cleanup):
                log.warning("dropped scratch database %s, left by an interrupted proof", name)

    def record_clean_stop(self, bot_stopped: bool) -> None:
        """Nothing: the clean-stop record vouches for a file, and there is none."""

    async def mark_restored(self, how: str, check_deferred: bool = False) -> bool:
        await self.check_locked()
        return self.ctx.state.database.integrity is Integrity.OK


Guard = DataGuard | ServerGuard


def make_guard(
    ctx: RuntimeContext, bot: BotSupervisor, jobs: BackupJobs, offsite: OffsiteStore | None
) -> Guard:
    """The guard the database kind calls for."""
    if isinstance(ctx.kind, PostgresDatabase):
        return ServerGuard(ctx, bot, ctx.kind)
    return DataGuard(ctx, bot, jobs, offsite)
