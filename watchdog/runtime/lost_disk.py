"""A fresh-looking machine (no database, no local backups) with backups on the offsite branch
has lost its disk: the data comes back from the branch, never a quiet first run."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from watchdog.offsite import OffsiteError
from watchdog.rules.state import Integrity
from watchdog.runtime.context import RuntimeContext

if TYPE_CHECKING:
    from watchdog.offsite.store import OffsiteStore

log = logging.getLogger(__name__)

TRANSIENT = ("unreachable", "timeout", "busy")
LIST_OFFSITE_PAUSES = (5.0, 15.0)
"""Pauses between the three tries to list the offsite branch when the disk looks lost."""


async def offsite_has_backups(ctx: RuntimeContext, offsite: OffsiteStore | None) -> bool:
    """A fresh-looking machine (no database, no local backups) with backups on the offsite
    branch has lost its disk: the data comes back from the branch."""
    if offsite is None or ctx.state.database.integrity is not Integrity.MISSING:
        return False
    entries: list[object] = []
    for attempt, pause in enumerate((*LIST_OFFSITE_PAUSES, 0.0), start=1):
        try:
            found = await asyncio.to_thread(offsite.candidates)
            # Refused packages count too: a branch of ours holding only forged or old ones
            # is still a lost disk (recovery names each refusal), never a quiet first run.
            entries = [*found.entries, *found.refused]
            break
        except Exception as error:
            log.error("could not list offsite backups (attempt %d of 3): %s", attempt, error)
            transient = isinstance(error, OffsiteError) and error.kind in TRANSIENT
            if attempt == 3 or not transient:
                # Whether the branch holds backups cannot be told: a silent first run would
                # start empty and let pushes rotate good packages away. Recover instead: it
                # names why nothing could be used, and the fresh start holds rotation.
                log.error("the offsite branch cannot be read: treated as a lost disk")
                return True
            await ctx.sleep(pause)
    if entries:
        log.warning("no database and no local backup, but %d offsite: a lost disk", len(entries))
    return bool(entries)
