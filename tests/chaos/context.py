"""What a fault sees of the campaign: the stack, the fake Bot API, the workload, the monitor, and
a few questions about the stack's state asked over /health (bounded polling, never a sleep taken
for an answer)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from tests.chaos.fakeapi import RecordingTelegramAPI
from tests.chaos.monitor import Monitor
from tests.chaos.stack import ChaosStack
from tests.chaos.workload import Workload

T = TypeVar("T")
POLL = 0.2


class Timeout(Exception):
    """A bounded wait ran out."""


class Failed(Exception):
    """The stack did something a fault forbids (restored a damaged backup, say): no more waiting."""


@dataclass
class Context:
    stack: ChaosStack
    fake: RecordingTelegramAPI
    workload: Workload
    monitor: Monitor
    foreign_wal: Path
    corrupted: set[str] = field(default_factory=set)
    """Backups this campaign damaged on purpose (never "good" for the accounting)."""
    forged: set[str] = field(default_factory=set)
    """Forged packages still on the branch."""
    log: Callable[[str], None] = print

    def health(self) -> dict[str, Any] | None:
        answer = self.stack.health()
        return answer[1] if answer else None

    def wait(self, predicate: Callable[[], T | None], timeout: float, what: str) -> T:
        """Poll ``predicate`` until it gives something truthy; Timeout after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while True:
            try:
                value = predicate()
            except Failed:
                raise
            except Exception as error:  # the stack may be half up
                last, value = error, None
            if value:
                return value
            if time.monotonic() >= deadline:
                raise Timeout(
                    f"{what}: not within {timeout:.0f} s" + (f" ({last!r})" if last else "")
                )
            time.sleep(POLL)

    def recovered_since(self, at: float) -> dict[str, Any] | None:
        """The watchdog's last recovery, if it happened at or after wall time ``at``."""
        doc = self.health()
        if not doc:
            return None
        recovery = doc.get("recovery") or {}
        last_at = parse_iso(recovery.get("last_at"))
        if last_at is None or last_at < int(at):
            return None
        return recovery.get("last") or {}

    def bot_running(self) -> dict[str, Any] | None:
        doc = self.health()
        if doc and (doc.get("bot") or {}).get("status") == "running":
            return doc
        return None

    def quarantined(self) -> set[str]:
        folder = self.stack.data / "quarantine"
        return {p.name for p in folder.iterdir()} if folder.is_dir() else set()


def parse_iso(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None
