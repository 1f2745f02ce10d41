"""What the watchdog knows right now. Written by the supervision loop, read by HTTP and metrics.

Everything here is plain data, so /health answers from it without touching the database.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from watchdog.rules.history import History
from watchdog.rules.leader import LeaderState


class BotPhase(StrEnum):
    STARTING = "starting"  # launched, no heartbeat yet
    RUNNING = "running"  # polling (heartbeat fresh)
    BACKOFF = "backoff"  # exited, waiting to be relaunched
    STOPPING = "stopping"
    STOPPED = "stopped"
    NOT_CONFIGURED = "not_configured"  # no token, or Telegram refused it: no relaunch
    HELD = "held"  # not launched: the database is not fit to run on


class Integrity(StrEnum):
    UNKNOWN = "unknown"
    OK = "ok"
    MISSING = "missing"  # no database yet: the bot creates it
    CORRUPT = "corrupt"
    UNREACHABLE = "unreachable"  # a database server that cannot be used (down, refused, too old)


@dataclass
class BotState:
    configured: bool = True
    phase: BotPhase = BotPhase.STOPPED
    pid: int | None = None
    launched_at: float | None = None
    launches: int = 0
    consecutive_failures: int = 0
    last_exit_code: int | None = None
    last_exit_at: float | None = None
    last_exit_reason: str | None = None
    last_heartbeat: float | None = None
    next_launch_at: float | None = None
    message: str | None = None

    @property
    def restarts(self) -> int:
        return max(0, self.launches - 1)


@dataclass
class DatabaseState:
    path: str = ""
    kind: str = "sqlite"
    """``sqlite`` (a file) or ``postgresql`` (a server: ``data.kinds``)."""
    server: dict[str, Any] | None = None
    """A server's host, port, database name and version (never a user or password)."""
    exists: bool = False
    size_bytes: int = 0
    integrity: Integrity = Integrity.UNKNOWN
    detail: str | None = None
    checked_at: float | None = None
    check_seconds: float | None = None
    tables: dict[str, int] = field(default_factory=dict)
    sqlite_version: str = ""
    full_check_owed: str | None = None
    """Why the live file still owes a full integrity_check (a quick start, an install proven by
    its hash); it runs with the bot up."""

    @property
    def records(self) -> int | None:
        return sum(self.tables.values()) if self.checked_at is not None else None


@dataclass
class StorageState:
    path: str = ""
    disk_usage_percent: float = 0.0
    free_bytes: int = 0
    total_bytes: int = 0
    mount_point: str = ""
    persistent_disk: bool = False
    measured_at: float | None = None


@dataclass(frozen=True)
class BackupSummary:
    id: str
    tier: str
    created_at: float
    size_bytes: int
    file_size: int
    duration_s: float = 0.0


@dataclass
class BackupsState:
    intervals: dict[str, float] = field(default_factory=dict)
    newest: dict[str, BackupSummary | None] = field(default_factory=dict)
    count: int = 0
    total_bytes: int = 0
    last_error: str | None = None
    last_error_at: float | None = None
    bytes_per_second: float = 0.0
    failures_total: dict[str, int] = field(default_factory=dict)
    """Failed backups per tier since the watchdog started (a Prometheus counter)."""

    def failed(self, tier: str, message: str, at: float) -> None:
        self.last_error, self.last_error_at = message, at
        self.failures_total[tier] = self.failures_total.get(tier, 0) + 1

    @property
    def last_backup_at(self) -> float | None:
        times = [summary.created_at for summary in self.newest.values() if summary is not None]
        return max(times) if times else None


@dataclass
class RecoveryState:
    count: int = 0
    last_at: float | None = None
    last: dict[str, Any] | None = None
    fresh_start_at: float | None = None
    fresh_start_reason: str | None = None
    last_replay: dict[str, Any] | None = None
    """What the journal's last replay did (after a recovery or an operator's restore)."""
    outcomes: dict[str, int] = field(default_factory=dict)
    """Recoveries since the watchdog started, by outcome: ``restored`` or ``fresh``."""
    rows_salvaged: int = 0
    """Rows merged back from damaged files since the watchdog started."""

    def record(self, at: float, result: Any, replay: Any = None) -> None:
        """``result``: the recovery's; ``replay``: what the journal's replay did after it."""
        self.count += 1
        outcome = "fresh" if result.fresh else "restored"
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
        merged = (result.salvage or {}).get("merged")
        if isinstance(merged, dict):
            self.rows_salvaged += sum(n for n in merged.values() if isinstance(n, int))
        self.last_at = at
        self.last = {
            "reason": result.reason,
            "restored_from": result.restored_from,
            "source": result.source,
            "rejected": list(result.rejected),
            "quarantine": result.quarantine,
            "salvage": result.salvage,
            "journal": getattr(result, "journal", None),
            "erasures": getattr(result, "erasures", None),
            "seconds": round(result.seconds, 3),
            "replay": replay.as_dict() if replay is not None else None,
        }
        if replay is not None:
            self.last_replay = {"at": at, **replay.as_dict()}
        if result.fresh:
            self.fresh_start_at = at
            self.fresh_start_reason = result.summary()

    def replayed(self, at: float, replay: Any, recovered_at: float | None = None) -> None:
        """What the bot's start-up replay reported, after the recovery made at ``recovered_at``
        (None: after an operator's restore)."""
        if recovered_at is not None and self.last is not None and self.last_at == recovered_at:
            self.last["replay"] = replay.as_dict()
        self.last_replay = {"at": at, **replay.as_dict()}


@dataclass
class OffsiteState:
    enabled: bool = False
    newest_id: str | None = None
    newest_at: float | None = None
    last_success_at: float | None = None
    last_error: str | None = None
    last_error_kind: str | None = None
    failures: int = 0
    failures_total: int = 0
    """Failed pushes since the watchdog started (``failures`` is the ones in a row)."""
    next_try_at: float | None = None
    rotation_held_since: float | None = None
    """Set while a fresh start holds rotation: pushes keep every older package on the branch
    until an operator runs ``python -m watchdog offsite-release``."""
    refused: list[dict[str, str]] = field(default_factory=list)
    """Packages the last push found on the branch that this key did not make (id, commit,
    kind, reason): never removed by the watchdog, worth an operator's look."""


@dataclass
class JournalState:
    """The update journal as the watchdog last read it, and its offsite copy."""

    bytes: int = 0
    segments: int = 0
    oldest_at: float | None = None
    newest_at: float | None = None
    problems: list[str] = field(default_factory=list)
    measured_at: float | None = None
    covered_until: float | None = None
    """Every update before this is in a verified backup (offsite too, when configured)."""
    pruned: int = 0
    """Segments removed since the watchdog started (covered or over the bound)."""
    bound_pruned: int = 0
    """Of those, removed only because the journal passed JOURNAL_MAX_MB: updates no backup
    held may be gone from this disk."""
    bound_pruned_at: float | None = None
    bound_message: str | None = None
    offsite_enabled: bool = False
    last_push_at: float | None = None
    """When the last journal package went offsite."""
    pushed_newest_at: float | None = None
    """The newest entry on the branch: a lost disk loses what came after."""
    push_failures: int = 0
    last_push_error: str | None = None
    next_push_at: float | None = None
    pushes: int = 0
    last_push_seconds: float | None = None


@dataclass
class DrillState:
    last_at: float | None = None
    results: list[dict[str, Any]] = field(default_factory=list)

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [result for result in self.results if not result.get("ok")]


@dataclass
class Event:
    at: float
    kind: str
    message: str


@dataclass
class WatchdogState:
    started_at: float
    bot: BotState = field(default_factory=BotState)
    database: DatabaseState = field(default_factory=DatabaseState)
    storage: StorageState = field(default_factory=StorageState)
    backups: BackupsState = field(default_factory=BackupsState)
    recovery: RecoveryState = field(default_factory=RecoveryState)
    offsite: OffsiteState = field(default_factory=OffsiteState)
    drill: DrillState = field(default_factory=DrillState)
    journal: JournalState = field(default_factory=JournalState)
    leader: LeaderState = field(default_factory=LeaderState)
    """Whether this instance backs up a database several share (``rules.leader``)."""
    loop_tick: float | None = None
    loop_error: str | None = None
    files_set_aside: dict[str, str] = field(default_factory=dict)
    """Files in DATA_DIR not trusted (path → what and why); see ``data.fs.note_set_aside``."""
    events: deque[Event] = field(default_factory=lambda: deque(maxlen=50))
    history: History = field(default_factory=History)
    """Database size and backup runs over the last week (the status page's charts)."""

    def record(self, at: float, kind: str, message: str) -> None:
        self.events.append(Event(at=at, kind=kind, message=message))
