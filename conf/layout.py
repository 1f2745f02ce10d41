"""The one place that knows where things live below DATA_DIR."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from conf.exitcodes import EXIT_BAD_SETTINGS, EXIT_REFUSED
from conf.files import DIR_MODE

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
    def journal(self) -> Path:
        """The update journal: every acknowledged update, replayed after a restore."""
        return self.root / "journal"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def run(self) -> Path:
        """Files that only mean something while the stack runs: the lock, the bot's heartbeat."""
        return self.root / "run"

    @property
    def exports(self) -> Path:
        """The bot's /export files while they are written and sent (owner-only; emptied at
        every start of the bot)."""
        return self.run / "exports"

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
    def replay_report(self) -> Path:
        """What the bot's start-up replay did, written before it polls (read after a restore)."""
        return self.run / "replay.json"

    @property
    def admin_file(self) -> Path:
        """Where local commands find the running watchdog's admin API (mode 0600)."""
        return self.run / "admin.json"

    @property
    def state_file(self) -> Path:
        return self.root / "watchdog-state.json"

    def ensure(self) -> None:
        """Create the folders owner-only (0700) and keep DATA_DIR itself so."""
        for folder in (self.root, self.database.parent, self.logs, self.run):
            folder.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        for folder in {self.root, self.logs, self.run}:
            if folder.stat().st_mode & 0o077:
                folder.chmod(DIR_MODE)

    def place_problem(self) -> tuple[int, str] | None:
        """Why DATA_DIR or DATABASE_PATH cannot be used, as (exit code, one line), or None.

        Tried for real (a probe file is created and removed): permissions alone do not tell a
        read-only mount, and root passes every permission check."""
        try:
            self.root.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        except OSError as error:
            return EXIT_REFUSED, f"DATA_DIR: cannot create {self.root}: {error.strerror}"
        if not _writable(self.root):
            return EXIT_REFUSED, f"DATA_DIR: {self.root} is not writable by this user"
        taken = self._reserved_for(self.database)
        if taken:
            return EXIT_BAD_SETTINGS, f"DATABASE_PATH: {self.database} is where {taken}"
        blocker = next((p for p in self.database.parents if p.exists() and not p.is_dir()), None)
        if blocker is not None:
            return EXIT_BAD_SETTINGS, f"DATABASE_PATH: {blocker} is a file, not a folder"
        folder = self.database.parent
        if not folder.is_dir():
            if folder.is_relative_to(self.root):
                return None  # made by ensure()
            return EXIT_BAD_SETTINGS, f"DATABASE_PATH: the folder {folder} does not exist"
        if not _writable(folder):
            return EXIT_BAD_SETTINGS, f"DATABASE_PATH: the folder {folder} is not writable"
        if self.database.exists() and not self.database.is_file():
            return EXIT_BAD_SETTINGS, f"DATABASE_PATH: {self.database} is not a regular file"
        return None

    def _reserved_for(self, path: Path) -> str | None:
        """What of the watchdog's own lives at or above ``path`` (None: nothing)."""
        places = {
            self.backups: "the backups are kept",
            self.quarantine: "damaged files are kept",
            self.logs: "the logs are written",
            self.journal: "the update journal is kept",
            self.run: "the watchdog keeps its lock and the bot's heartbeat",
            self.root / "offsite": "the offsite cache is kept",
            self.state_file: "the watchdog keeps its state",
            self.root: "DATA_DIR itself is",
        }
        for place, what in places.items():
            if path == place or (place in path.parents and place != self.root):
                return what
        return None


def _writable(folder: Path) -> bool:
    probe = folder / f".probe-{os.getpid()}-{os.urandom(4).hex()}"
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        probe.unlink()
    except OSError:
        return False
    return os.access(folder, os.W_OK | os.X_OK)
