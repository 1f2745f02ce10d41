"""What the web layer needs of the running watchdog, and nothing more: the web modules are typed
against these, never against the concrete service (which imports them, not the reverse)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from conf.settings import Settings
from watchdog.data.backups import Outcome
from watchdog.rules.health import HealthReport
from watchdog.rules.state import WatchdogState
from watchdog.runtime.clock import Clock


class Observable(Protocol):
    """Read-only: enough for /health, /stats and /metrics."""

    settings: Settings
    state: WatchdogState
    clock: Clock

    def health(self) -> HealthReport: ...


class Requests(Protocol):
    """An operator's commands, done by the running watchdog (``runtime.requests``); each raises
    ``runtime.actions.RequestFailed`` with one line when it cannot be done."""

    async def backup(self, tier: str, reason: str) -> dict[str, Any]: ...

    async def verify(
        self, wanted: str | None, every: bool, note: Callable[[str], None]
    ) -> dict[str, Any]: ...

    async def drill(self) -> dict[str, Any]: ...

    async def catalogue(self, tier: str | None) -> list[dict[str, Any]]: ...


class Operable(Observable, Protocol):
    """What the loopback admin API may ask for."""

    requests: Requests

    async def manual_backup(self, reason: str) -> tuple[Outcome | None, str | None]: ...

    async def manual_restore(
        self, wanted: str, from_git: bool = False, replay: bool = True
    ) -> tuple[bool, str]: ...

    async def release_offsite_rotation(self) -> str: ...
