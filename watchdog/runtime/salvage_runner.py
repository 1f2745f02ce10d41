"""The quarantined files' salvage, with the bot back: one ``python -m watchdog.data.salvage_job``
worker at a time (low priority), reading the damaged file while the bot answers, then merging
under the data lock (no restore, recovery or backup swaps the live file under the merge; the
bot's writes wait one short step at most). What it did goes into ``/health``
(``recovery.last.salvage``: ``pending``, then the report), the metrics (rows salvaged), the
event log and the admins' alert. Stopped before any recovery and at the watchdog's end (the
worker dies with its stdin); a salvage left unfinished stays pending for the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
from pathlib import Path
from typing import Any

from watchdog.data.quarantine import Quarantined
from watchdog.data.salvage_job import owed_salvages
from watchdog.rules.recovery import salvage_may_start
from watchdog.runtime.context import RuntimeContext

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
WAIT_FOR_BOT = 0.5
"""Seconds between looks at whether the bot is back before a salvage starts."""
LINE_LIMIT = 1 << 20


class BackgroundSalvage:
    def __init__(self, ctx: RuntimeContext) -> None:
        self.ctx = ctx
        self.task: asyncio.Task[None] | None = None
        self.process: asyncio.subprocess.Process | None = None

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.done()

    def start(self) -> None:
        """Salvage every quarantine that is owed one, once the bot is back (non-blocking)."""
        if not self.running:
            self.task = asyncio.create_task(self._run(), name="salvage")

    async def stop(self) -> None:
        """Stop a salvage under way (it stays pending); return once its worker is gone."""
        if self.task is not None and not self.task.done():
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        self.task = None

    async def _run(self) -> None:
        ctx = self.ctx
        entries = await asyncio.to_thread(owed_salvages, ctx.layout)
        if not entries:
            return
        bot, began = ctx.state.bot, ctx.clock.monotonic()
        while not salvage_may_start(bot.phase.value, ctx.clock.monotonic() - began):
            if ctx.stop_requested:
                return
            await ctx.sleep(WAIT_FOR_BOT)
        for entry in entries:
            if ctx.stop_requested:
                return
            try:
                await self._one(entry)
            except (OSError, ValueError) as error:
                ctx.events.record(
                    "recovery",
                    f"salvage of {entry.folder.name} failed ({error}); still pending, kept",
                    logging.ERROR,
                )

    async def _one(self, entry: Quarantined) -> None:
        ctx = self.ctx
        log.info("salvage of %s: reading the damaged file, with the bot up", entry.folder.name)
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "watchdog.data.salvage_job",
            str(ctx.layout.root),
            str(ctx.layout.database),
            str(entry.folder),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=ROOT,
            limit=LINE_LIMIT,
        )
        self.process = process
        try:
            first = await _answer(process)
            done = first
            if first.get("phase") == "read":
                async with ctx.data_lock:
                    assert process.stdin is not None
                    process.stdin.write(b"merge\n")
                    await process.stdin.drain()
                    done = await _answer(process)
            code = await process.wait()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
            self.process = None
        if done.get("phase") != "done" or code != 0:
            raise ValueError(f"the salvage worker ended with code {code} before its report")
        self._report(entry, {k: v for k, v in done.items() if k != "phase"})

    def _report(self, entry: Quarantined, report: dict[str, Any]) -> None:
        ctx = self.ctx
        recovery = ctx.state.recovery
        if recovery.last is not None and recovery.last.get("quarantine") == str(entry.folder):
            recovery.last["salvage"] = report
        merged = report.get("merged")
        total = (
            sum(n for n in merged.values() if isinstance(n, int)) if isinstance(merged, dict) else 0
        )
        recovery.rows_salvaged += total
        if report.get("status") == "not owed":
            return
        renumbered = report.get("renumbered")
        moved = sum(renumbered.values()) if isinstance(renumbered, dict) else 0
        message = (
            f"salvage of {entry.folder.name} {report.get('status')}: {total} rows salvaged "
            f"from the damaged file with the bot up ({moved} rows under a new id)"
        )
        ctx.events.record("recovery", message, logging.WARNING)
        ctx.events.alert(f"♻️ {message}")


async def _answer(process: asyncio.subprocess.Process) -> dict[str, Any]:
    """The worker's next JSON line (a line of our own child, still checked for its shape)."""
    assert process.stdout is not None
    line = await process.stdout.readline()
    if not line:
        return {}
    document = json.loads(line)
    if not isinstance(document, dict):
        raise ValueError("the salvage worker's answer is not a JSON object")
    return document
