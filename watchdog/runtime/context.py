"""What every part of the running watchdog shares: settings, layout, the one clock, the live
state, the remembered record, events, the data lock and the stop signal.

Parts receive it instead of reaching into the service; a test builds one with a fake clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import TypeVar

from conf.layout import DataLayout
from conf.settings import Settings
from watchdog.data.kinds import DatabaseKind, SqliteFile
from watchdog.data.remembered import RememberedStore
from watchdog.rules.state import WatchdogState
from watchdog.runtime.clock import Clock
from watchdog.runtime.events import Events

T = TypeVar("T")


@dataclass
class RuntimeContext:
    settings: Settings
    layout: DataLayout
    clock: Clock
    state: WatchdogState
    remembered: RememberedStore
    events: Events
    data_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    """One operation on the data at a time: checks, backups, recovery, restores, drills."""
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    kind: DatabaseKind | None = None
    """What holds the data (``data.kinds.database_kind``); None: the SQLite file."""

    @property
    def database(self) -> DatabaseKind:
        return self.kind if self.kind is not None else SqliteFile(self.settings.database)

    @property
    def stop_requested(self) -> bool:
        return self.stopping.is_set()

    async def sleep(self, seconds: float) -> None:
        """Sleep on the clock, waking early when a stop is requested."""
        await self.clock.sleep(seconds, self.stopping)

    async def wait_or_stop(self, awaitable: Awaitable[T]) -> None:
        """Wait for ``awaitable`` or a stop request, whichever comes first."""
        waiter = asyncio.ensure_future(awaitable)
        stopper = asyncio.ensure_future(self.stopping.wait())
        await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        for task in (waiter, stopper):
            task.cancel()
