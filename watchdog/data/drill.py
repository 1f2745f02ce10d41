"""Restore drills: prove each tier's newest backup can really be restored, without touching the
live database: materialize it into a scratch file, re-check its sha256, schema (the bot's, as a
recovery demands) and integrity, and read every table back to the row counts its manifest
recorded."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from watchdog.data import pgdump
from watchdog.data.catalogue import Backup, Catalogue
from watchdog.data.database import connect, count_rows
from watchdog.data.kinds import DatabaseKind, drill_backup
from watchdog.data.recovery import schema_problem
from watchdog.data.server import ServerError
from watchdog.data.snapshot import SnapshotError, integrity_problem, materialize, sha256_of


@dataclass(frozen=True)
class DrillResult:
    tier: str
    id: str
    ok: bool
    detail: str
    seconds: float

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def drill_one(backup: Backup, scratch: Path) -> DrillResult:
    started = time.monotonic()
    scratch.mkdir(parents=True, exist_ok=True)
    target = scratch / f".drill-{backup.id}.db"

    def result(ok: bool, detail: str) -> DrillResult:
        return DrillResult(backup.tier, backup.id, ok, detail, round(time.monotonic() - started, 3))

    try:
        if not backup.data_path.exists():
            return result(False, "data file missing")
        if sha256_of(backup.data_path) != backup.manifest.file_sha256:
            return result(False, "stored file does not match its sha256")
        materialize(backup, target)
        if sha256_of(target) != backup.manifest.sha256:
            return result(False, "restored database does not match its sha256")
        problem = schema_problem(target)
        if problem:
            return result(False, problem)
        problem = integrity_problem(target)
        if problem:
            return result(False, f"integrity_check: {problem}")
        connection = connect(target, "ro", immutable=True)
        try:
            rows = count_rows(connection)
        finally:
            connection.close()
        if rows != backup.manifest.rows:
            return result(False, f"row counts differ from the manifest: {rows}")
        return result(True, f"restored and read back: {sum(rows.values())} rows")
    except (OSError, sqlite3.DatabaseError, ValueError) as error:
        return result(False, f"{type(error).__name__}: {error}")
    finally:
        target.unlink(missing_ok=True)


def drill_dump(backup: Backup, kind: DatabaseKind) -> DrillResult:
    """A PostgreSQL dump, restored into a scratch database on the configured server."""
    started = time.monotonic()
    try:
        ok, detail = True, drill_backup(kind, backup, lambda: True)
    except (SnapshotError, ServerError, OSError) as error:
        ok, detail = False, str(error)
    return DrillResult(backup.tier, backup.id, ok, detail, round(time.monotonic() - started, 3))


def run_drill(
    catalogue: Catalogue, scratch: Path, kind: DatabaseKind | None = None
) -> list[DrillResult]:
    """The newest backup of every tier that has one (of a dump: only on a server, where
    ``kind`` is a PostgreSQL database; a file's backup: in a scratch file)."""
    results = []
    for backup in catalogue.newest_by_tier().values():
        if backup is None:
            continue
        if not pgdump.is_dump(backup.manifest):
            results.append(drill_one(backup, scratch))
        elif kind is not None and not kind.keeps_a_file:
            results.append(drill_dump(backup, kind))
    return results
