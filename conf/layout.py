"""The one place that knows where things live below DATA_DIR."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

TIERS = ("hourly", "daily", "weekly", "deploy", "restart", "shutdown", "manual")


@dataclass(frozen=True)
class DataLayout:
    root: Path
    database: Path

    @classmethod
    def from_settings(cls, settings: object) -> DataLayout:
        return cls(root=settings.data_dir, database=settings.database)  # type: ignore[attr-defined]

    @property
    def database_companions(self) -> tuple[Path, Path]:
        """The ``-wal`` and ``-shm`` files that belong with the database and move with it."""
        return (Path(f"{self.database}-wal"), Path(f"{self.database}-shm"))

    @property
    def backups(self) -> Path:
        return self.root / "backups"

    def tier(self, name: str) -> Path:
        if name not in TIERS:
            raise ValueError(f"unknown backup tier {name!r}")
        return self.backups / name

    @property
    def quarantine(self) -> Path:
        return self.root / "quarantine"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def run(self) -> Path:
        """Files that only mean something while the stack runs: the lock, the bot's heartbeat."""
        return self.root / "run"

    @property
    def lock_file(self) -> Path:
        return self.run / "watchdog.lock"

    @property
    def heartbeat_file(self) -> Path:
        return self.run / "bot.heartbeat"

    @property
    def bot_pid_file(self) -> Path:
        return self.run / "bot.pid"

    @property
    def admin_file(self) -> Path:
        """Where local commands find the running watchdog's admin API (mode 0600)."""
        return self.run / "admin.json"

    @property
    def state_file(self) -> Path:
        return self.root / "watchdog-state.json"

    def ensure(self) -> None:
        for folder in (self.root, self.database.parent, self.logs, self.run):
            folder.mkdir(parents=True, exist_ok=True)
