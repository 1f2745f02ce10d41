"""``python -m watchdog restore``: put a chosen verified backup in place of the live database.

The live database is never deleted: it goes to ``quarantine/``. While the stack runs, the running
watchdog does the work (it stops the bot, restores, relaunches) at this command's request, as a
job whose progress this command shows; otherwise this command does it itself, holding the
watchdog's lock so none starts meanwhile.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING

from conf.layout import DataLayout
from conf.units import MIB
from watchdog.cli.common import iso, prepare
from watchdog.cli.progress import Progress
from watchdog.cli.remote import Refused, Unreachable, reach
from watchdog.rules.server import database_url_of

if TYPE_CHECKING:
    from watchdog.offsite import OffsiteStore


class Failed(Exception):
    """The restore done here could not be done; nothing changed."""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "restore",
        help="restore a verified backup (the current database is quarantined, never deleted)",
        description=(
            "Replace the live database with a verified backup: `latest` (default) or an id from "
            "`list` (or `list --offsite` with --from-git). The backup is verified before anything "
            "changes; the current database and its -wal/-shm move to quarantine/. Works while "
            "the stack runs (the watchdog stops the bot, restores and relaunches it)."
        ),
    )
    parser.add_argument("id", nargs="?", default="latest", help="a backup id, or latest")
    parser.add_argument("--from-git", action="store_true", help="from the offsite git branch")
    parser.add_argument(
        "--to",
        metavar="postgresql://…",
        help=(
            "restore a PostgreSQL dump into this database, which must be empty (a non-empty one "
            "is refused); with DATABASE_URL set and no --to, into the configured database, "
            "only if it is empty. Nothing is ever restored over a server database"
        ),
    )
    parser.add_argument("--dry-run", action="store_true", help="verify and tell; change nothing")
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    parser.add_argument(
        "--no-replay",
        action="store_true",
        help=(
            "do not replay the journal's updates after the backup (restoring on purpose to an "
            "earlier state): the journal's segments are set aside, kept, never replayed"
        ),
    )
    parser.add_argument(
        "--allow-unauthenticated",
        action="store_true",
        help=(
            "with --from-git, also accept packages of the old format that carry no MAC (anyone "
            "with push access could have written them); only with the stack stopped"
        ),
    )
    parser.set_defaults(handler=command)


def fail(message: str, code: int = 1) -> int:
    print(f"watchdog restore: {message}", file=sys.stderr)
    return code


def confirmed(what: str, assume_yes: bool) -> bool:
    if assume_yes:
        return True
    if not sys.stdin.isatty():
        print(f"watchdog restore: would {what}; add --yes to do it", file=sys.stderr)
        return False
    answer = input(f"{what}? Type yes to go on: ")
    return answer.strip().lower() == "yes"


def command(args: argparse.Namespace) -> int:
    settings, layout = prepare()
    store = None
    if args.from_git:
        from watchdog.offsite import OffsiteError, OffsiteStore

        try:
            store = OffsiteStore.from_settings(
                settings, read_only=True, allow_unauthenticated=args.allow_unauthenticated
            )
        except OffsiteError as error:
            return fail(str(error))
        if store is None:
            return fail("no offsite store configured: set BACKUP_GIT_URL (and its token and key)")
    elif args.allow_unauthenticated:
        return fail("--allow-unauthenticated goes with --from-git", 2)

    if args.to or database_url_of(settings) is not None:
        from watchdog.cli.restore_server import restore_to_server
        from watchdog.data.kinds import database_kind

        return restore_to_server(args, layout, store, database_kind(settings))
    if args.dry_run:
        return dry_run(args, layout, store)

    what = f"restore {'offsite ' if store else ''}backup {args.id} over {layout.database}"
    if not confirmed(what, args.yes):
        return 1
    again = f"python -m watchdog restore {args.id}{' --from-git' if store else ''} --yes"
    try:
        with reach(layout, hold=True) as remote:
            if remote is None:
                summary = restore_here(layout, args, store)
            elif args.allow_unauthenticated:
                return fail(
                    "the running watchdog never installs an unauthenticated package: stop the "
                    f"stack, then run: {again} --allow-unauthenticated"
                )
            else:
                body = {"id": args.id, "from_git": bool(store), "replay": not args.no_replay}
                print(remote.run("restore", body, Progress())["message"])
                return 0
    except Unreachable as error:
        return fail(f"{error}; to restore with the stack stopped: {again}")
    except Refused as error:
        print(f"refused: {error}")
        return 1
    except Failed as error:
        return fail(str(error))
    print(summary)
    print("start the stack (make run, or the Render service) to bring the bot back")
    return 0


def restore_here(layout: DataLayout, args: argparse.Namespace, store: OffsiteStore | None) -> str:
    """No watchdog runs (the caller holds its lock): the restore, by this process."""
    from watchdog.data.restore import RestoreError, journal_set_aside, restore_requested
    from watchdog.offsite import OffsiteError

    try:
        with Progress().running(f"restoring backup {args.id}: copying and proving it"):
            summary = restore_requested(layout, args.id, time.time(), store)
    except (RestoreError, OffsiteError) as error:
        raise Failed(str(error)) from None
    if args.no_replay:
        return f"{summary}; {journal_set_aside(layout, time.time())}"
    return f"{summary}; the bot replays the journal's later updates before it starts"


def dry_run(args: argparse.Namespace, layout: DataLayout, store: OffsiteStore | None) -> int:
    """Prove what a restore would install, exactly as the restore does, and change nothing."""
    from watchdog.data.restore import RestoreError, prove_requested
    from watchdog.offsite import OffsiteError

    try:
        manifest, refused = prove_requested(layout, args.id, time.time(), store)
    except (RestoreError, OffsiteError) as error:
        return fail(str(error))
    for reason in refused:
        print(f"refused: {reason}")
    where = "offsite backup " if store is not None else ""
    print(
        f"would restore {where}{manifest.id} ({manifest.tier}, {iso(manifest.created_at)}, "
        f"{manifest.size_bytes / MIB:.2f} MB, {sum(manifest.rows.values())} rows): "
        "sha256, schema and integrity_check verified"
    )
    print(f"the current {layout.database.name} (with -wal/-shm) would move to {layout.quarantine}/")
    return 0
