"""``python -m watchdog restore ID --to postgresql://…``: a PostgreSQL dump from the catalogue
(or the offsite branch) restored into an EMPTY database, its row counts then compared with the
dump's. A database that holds anything is refused in one line: the watchdog never restores
over a server database. No running watchdog is involved: the target is not the live data.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from conf.layout import DataLayout
from watchdog.data import pgdump
from watchdog.data.catalogue import Backup, Catalogue
from watchdog.data.kinds import DatabaseKind, PostgresDatabase, server_of
from watchdog.data.server import Server, ServerError
from watchdog.data.snapshot import SnapshotError

if TYPE_CHECKING:
    from watchdog.offsite import OffsiteStore


def fail(message: str) -> int:
    print(f"watchdog restore: {message}", file=sys.stderr)
    return 1


def local_dump(layout: DataLayout, wanted: str) -> Backup:
    backups = Catalogue(layout).scan()
    if wanted == "latest":
        dumps = [b for b in backups if pgdump.is_dump(b.manifest)]
        if not dumps:
            raise SnapshotError("no PostgreSQL dump in the catalogue (python -m watchdog list)")
        return max(dumps, key=lambda b: (b.created_at, b.id))
    found = next((b for b in backups if b.id == wanted), None)
    if found is None:
        raise SnapshotError(f"no backup {wanted} (python -m watchdog list)")
    if not pgdump.is_dump(found.manifest):
        raise SnapshotError(
            f"backup {wanted} is a SQLite file, not a PostgreSQL dump: to move it into a "
            "server, use python -m watchdog migrate --to postgresql://…"
        )
    return found


def offsite_dump(store: OffsiteStore, wanted: str, folder: Path) -> Backup:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f".restore-{int(time.time())}.pgdump"
    manifest = store.fetch(None if wanted == "latest" else wanted, path)
    if not pgdump.is_dump(manifest):
        path.unlink(missing_ok=True)
        raise SnapshotError(f"offsite backup {manifest.id} is a SQLite file, not a dump")
    return Backup(manifest, path, path.with_suffix(".json"))


def target_of(args: argparse.Namespace, kind: DatabaseKind) -> Server:
    if args.to:
        return server_of(args.to)
    assert isinstance(kind, PostgresDatabase)
    return kind.server


def restore_to_server(
    args: argparse.Namespace, layout: DataLayout, store: OffsiteStore | None, kind: DatabaseKind
) -> int:
    from watchdog.offsite import OffsiteError

    fetched: Backup | None = None
    try:
        target = target_of(args, kind)
        if store is not None:
            fetched = offsite_dump(store, args.id, layout.run)
            backup = fetched
        else:
            backup = local_dump(layout, args.id)
        if args.dry_run:
            problem = pgdump.check_dump_file(backup.data_path, backup.manifest)
            if problem:
                return fail(f"backup {backup.id}: {problem}")
            from watchdog.data.server import emptiness, probe

            probe(target)
            held = emptiness(target)
            if held:
                return fail(f"{target.where} is not empty ({held}): refused")
            print(f"would restore dump {backup.id} into {target.where} (empty)")
            return 0
        summary = pgdump.restore_dump(pgdump.Dumper(target), backup, target, lambda: True)
    except (SnapshotError, ServerError, OffsiteError) as error:
        return fail(str(error))
    finally:
        if fetched is not None:
            fetched.data_path.unlink(missing_ok=True)
    print(f"{summary}; row counts equal to the dump's")
    return 0
