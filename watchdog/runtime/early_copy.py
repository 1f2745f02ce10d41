"""The deploy copy made while the start-up ``quick_check`` runs (issue 14: a deploy answers in
seconds): the bot is not running yet and the clean stop left every commit in the main file, so
a plain copy, hashed as it goes, runs on the second core beside the check
(``data.staging.copy_early``). The deploy job stages it afterwards
(``data.staging.stage_copy`` takes it over if the file is still the one copied); if the check
fails, it is dropped."""

from __future__ import annotations

import asyncio
import logging

from watchdog.data.catalogue import Catalogue
from watchdog.data.snapshot import SnapshotError
from watchdog.data.staging import copy_early, discard_early
from watchdog.rules.deploy import copy_during_check
from watchdog.rules.state import Integrity
from watchdog.runtime.context import RuntimeContext
from watchdog.version import app_version

log = logging.getLogger(__name__)


def early_deploy_copy(
    ctx: RuntimeContext, catalogue: Catalogue, quick: bool
) -> asyncio.Task[bool] | None:
    """Start the copy when ``rules.deploy.copy_during_check`` says so; None otherwise."""
    recorded = ctx.remembered.load().app_version
    if not copy_during_check(quick, app_version(), recorded, ctx.database.stages_copies):
        return None
    return asyncio.create_task(
        asyncio.to_thread(
            copy_early, ctx.layout.database, catalogue, "deploy", lambda: not ctx.stop_requested
        )
    )


async def keep_if_sound(ctx: RuntimeContext, copying: asyncio.Task[bool] | None) -> None:
    """Once the check is over: wait for the copy; drop it unless the database was found sound."""
    if copying is None:
        return
    try:
        made = await copying
    except (OSError, SnapshotError) as error:
        log.warning("no early deploy copy (%s): it is made after the check", error)
        return
    if made and ctx.state.database.integrity is not Integrity.OK:
        await asyncio.to_thread(discard_early, ctx.layout.database)
