"""The one way any SQLite file is opened (re-exported by ``data.database``, whose docstring says
why ``trusted_schema`` is off). A module of its own so a check worker imports nothing else."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path
    from typing import Literal

    Mode = Literal["ro", "rw", "rwc"]


def connect(
    path: Path | str, mode: Mode = "ro", *, immutable: bool = False, timeout: float = 5.0
) -> sqlite3.Connection:
    """A connection with ``PRAGMA trusted_schema=OFF``: ``ro`` read-only, ``rw`` read-write
    (never creates the file), ``rwc`` creates it. ``immutable`` for a file nobody writes (a
    backup, a candidate): no locks, no ``-wal`` looked for."""
    uri = f"file:{path}?mode={mode}" + ("&immutable=1" if immutable else "")
    connection = sqlite3.connect(uri, uri=True, timeout=timeout)
    try:
        connection.execute("PRAGMA trusted_schema=OFF")
    except BaseException:
        connection.close()
        raise
    return connection
