"""The one seam between the watchdog and what holds the bot's data: a SQLite file on our disk,
or a database on a PostgreSQL server (``DATABASE_URL``). :func:`database_kind` chooses, from
the settings, in this one place; the rest of the watchdog asks the kind what to do.

A file is ours: it is checked page by page, quarantined, salvaged and replaced by a backup when
it fails. A server database is not: it is probed (connection, version), dumped and proven, and
never overwritten by the watchdog; restores go, on an operator's command, into an empty one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from watchdog.data import erasures_pg, pgdump
from watchdog.data import server as pg
from watchdog.data.backups import database_bytes
from watchdog.data.catalogue import Backup, Catalogue, Manifest
from watchdog.data.maker import make_snapshot
from watchdog.data.snapshot import (
    COMPRESSED_TIERS,
    Proceed,
    SnapshotError,
    SnapshotRequest,
)
from watchdog.rules import server as rules


class DatabaseKind(Protocol):
    name: str
    """``sqlite`` or ``postgresql`` (what /health's ``database.type`` says)."""
    keeps_a_file: bool
    """The data is a file in DATA_DIR: file checks, salvage, quarantine, automatic recovery,
    the clean-stop record and the disk guard's database part apply to it; a Render deploy
    needs a persistent disk for it."""
    stages_copies: bool
    """A deploy copy is staged now and proven with the bot up (a file's full check is long);
    otherwise the deploy backup is taken whole."""

    def snapshot(self, catalogue: Catalogue, request: SnapshotRequest) -> tuple[Manifest, Path]:
        """A verified backup (temporary data file, manifest). Raises SnapshotError."""
        ...

    def expected_bytes(self, tier: str) -> int:
        """Room a backup of ``tier`` needs while being made."""
        ...

    def describe(self) -> dict[str, Any]:
        """What /health may show of where the data is (never a secret)."""
        ...

    def cleanup(self) -> list[str]:
        """What interrupted work left outside DATA_DIR (dropped); its names."""
        ...

    def erasure_rows(self) -> int | None:
        """Rows of the record of erasures the database itself holds (PostgreSQL's ``erasures``
        table), compared with the newest backup's to make a backup due; None where the record
        lives on the disk and goes offsite with the journal (SQLite)."""
        ...


@dataclass
class SqliteFile:
    database: Path
    name: str = "sqlite"
    keeps_a_file: bool = True
    stages_copies: bool = True

    def snapshot(self, catalogue: Catalogue, request: SnapshotRequest) -> tuple[Manifest, Path]:
        return make_snapshot(self.database, catalogue, request)

    def expected_bytes(self, tier: str) -> int:
        size = database_bytes(self.database)
        return size * 2 if tier in COMPRESSED_TIERS else size

    def describe(self) -> dict[str, Any]:
        return {}

    def cleanup(self) -> list[str]:
        return []

    def erasure_rows(self) -> int | None:
        return None


@dataclass
class PostgresDatabase:
    server: pg.Server
    name: str = "postgresql"
    keeps_a_file: bool = False
    stages_copies: bool = False

    def __post_init__(self) -> None:
        self.dumper = pgdump.Dumper(self.server)
        self.probe: Callable[[], pg.Probe] = lambda: pg.probe(self.server)

    def snapshot(self, catalogue: Catalogue, request: SnapshotRequest) -> tuple[Manifest, Path]:
        return pgdump.make_dump(self.dumper, catalogue, request)

    def expected_bytes(self, tier: str) -> int:
        return pgdump.dump_bytes_estimate(self.server)

    def describe(self) -> dict[str, Any]:
        return self.server.describe()

    def cleanup(self) -> list[str]:
        try:
            return pg.leftover_scratches(self.server)
        except pg.ServerError:
            return []  # the probe says why, with the bot held

    def erasure_rows(self) -> int | None:
        try:
            return erasures_pg.server_table_rows(self.server)
        except pg.ServerError:
            return None  # the probe says why

    def restore(self, backup: Backup, target: pg.Server, proceed: Proceed) -> str:
        return pgdump.restore_dump(self.dumper, backup, target, proceed)


def server_of(url: object) -> pg.Server:
    """A server from ``DATABASE_URL`` as settings hold it (checked there), or a URL given on
    a command line."""
    for attribute in ("libpq_url", "get_secret_value"):
        found = getattr(url, attribute, None)
        if found is not None:
            url = found() if callable(found) else found
            break
    return pg.Server.from_url(str(url))


def database_kind(settings: object) -> DatabaseKind:
    """The kind the settings name: ``DATABASE_URL`` set → its PostgreSQL database, else the
    SQLite file at DATABASE_PATH."""
    url = rules.database_url_of(settings)
    if url is not None:
        return PostgresDatabase(server_of(url))
    return SqliteFile(settings.database)  # type: ignore[attr-defined]


def drill_backup(kind: DatabaseKind, backup: Backup, proceed: Proceed) -> str:
    """A drill of a dump into scratch, on the configured server. Raises SnapshotError."""
    if not isinstance(kind, PostgresDatabase):
        raise SnapshotError("a PostgreSQL dump is drilled on a server: DATABASE_URL is not set")
    return pgdump.drill_dump(kind.dumper, backup, proceed)
