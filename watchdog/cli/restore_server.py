"""``python -m watchdog restore ID --to postgresql://…``: a PostgreSQL dump from the catalogue
(or the offsite branch) restored into an EMPTY database, its row counts then compared with the
dump's. A database that holds anything is refused in one line: the watchdog never restores
over a server database. No running watchdog is involved: the target is not the live data.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from conf.layout import DataLayout
from watchdog.data import erasures_pg, pgdump
from watchdog.data.catalogue import Backup, Catalogue
from watchdog.data.kinds import DatabaseKind, PostgresDatabase, server_of
from watchdog.data.server import Server, ServerError, emptiness, probe
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
    path = folder / f".restore-{int(time.time())}-{secrets.token_hex(3)}.pgdump"
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
    fetched_newest: Backup | None = None
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
            probe(target)
            held = emptiness(target)
            if held:
                return fail(f"{target.where} is not empty ({held}): refused")
            print(f"would restore dump {backup.id} into {target.where} (empty)")
            return 0
        probe(target)
        was_empty = emptiness(target) is None
        try:
            summary = pgdump.restore_dump(pgdump.Dumper(target), backup, target, lambda: True)
        except SnapshotError:
            if was_empty and emptiness(target) is not None:  # restored, then refused
                erasures_pg.reerase(
                    target, layout, [], pgdump.find_tool("pg_restore"), live_database(kind, target)
                )
            raise
        print(f"{summary}; row counts equal to the dump's")
        newest, unread = None, None
        if store is not None:
            newest, unread = newest_offsite_dump(store, args.id, layout.run)
        fetched_newest = newest
        report = erasures_pg.reerase(
            target,
            layout,
            record_dumps(layout, [backup, *([newest] if newest else [])]),
            pgdump.find_tool("pg_restore"),
            live_database(kind, target),
        )
        if unread:
            report.problems.append(unread)
    except (SnapshotError, ServerError, OffsiteError) as error:
        return fail(str(error))
    finally:
        for done in (fetched, fetched_newest):
            if done is not None:
                done.data_path.unlink(missing_ok=True)
    if report.problems:
        print(f"{report.summary()}", file=sys.stderr)
        return fail(
            "ERASURES NOT MADE AGAIN: users erased since this dump may be back in "
            f"{target.where}; do not use it before the problems above are mended"
        )
    print(report.summary())
    return 0


def record_dumps(layout: DataLayout, also: list[Backup]) -> list[Path]:
    """Every dump whose erasures table counts: the catalogue's and ``also``, each proven to
    be what its manifest describes (a file that is not is left out)."""
    candidates = [b for b in Catalogue(layout).scan() if pgdump.is_dump(b.manifest)] + also
    proven = []
    for backup in candidates:
        if pgdump.check_dump_file(backup.data_path, backup.manifest) is None:
            proven.append(backup.data_path)
    return erasures_pg.dumps_to_read(proven)


def newest_offsite_dump(
    store: OffsiteStore, wanted: str, folder: Path
) -> tuple[Backup | None, str | None]:
    """The branch's newest dump, for its erasures, when the one restored is another (or why
    it cannot be read)."""
    from watchdog.offsite import OffsiteError

    if wanted == "latest":
        return None, None
    try:
        return offsite_dump(store, "latest", folder), None
    except SnapshotError:
        return None, None  # the newest is a SQLite file: from before the move up
    except OffsiteError as error:
        return None, f"the offsite branch's newest dump cannot be read for its erasures: {error}"


def live_database(kind: DatabaseKind, target: Server) -> Server | None:
    """The configured database, when it is not the target: it holds every erasure."""
    if not isinstance(kind, PostgresDatabase):
        return None
    live = kind.server
    same = (live.host, live.port, live.database) == (target.host, target.port, target.database)
    return None if same else live
