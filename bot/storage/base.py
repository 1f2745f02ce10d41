"""What every part of :class:`~bot.storage.Storage` shares: the connection and the way
statements run on it."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bot.storage.lean_dataset import dataset
from bot.storage.seam import seam_for


class DatabaseReplaced(RuntimeError):
    """The database file was deleted or replaced while the bot had it open: whatever it commits
    goes to a file nobody will read again, so nothing may be confirmed to Telegram."""


class StorageBase:
    def __init__(self, db: dataset.Database) -> None:
        self.db = db
        self.seam = seam_for(db)
        self.is_sqlite = self.seam.is_sqlite
        self._batch_open = False
        self._file: tuple[Path, int, int] | None = None

    def watch_file(self, path: Path) -> None:
        """Remember which file the database is (device and inode), to notice it being deleted
        or replaced under the open connection. SQLite's only: a server has no file of ours."""
        status = os.stat(path)
        self._file = (path, status.st_dev, status.st_ino)

    def check_file(self) -> None:
        """Raise DatabaseReplaced if the database path no longer names the file we write."""
        if self._file is None:
            return
        path, device, inode = self._file
        try:
            status = os.stat(path)
        except FileNotFoundError:
            raise DatabaseReplaced(f"{path} was deleted under the bot") from None
        if (status.st_dev, status.st_ino) != (device, inode):
            raise DatabaseReplaced(f"{path} was replaced under the bot by another file")

    def _run(self, statement: Any, params: Mapping[str, Any] | None = None) -> Any:
        """Execute on this thread's connection (inside the caller's ``with self.db``)."""
        return self.db.executable.execute(statement, dict(params or {}))

    def _rows(self, statement: Any, params: Mapping[str, Any] | None = None) -> list[dict]:
        return [dict(row) for row in self._run(statement, params).mappings()]
