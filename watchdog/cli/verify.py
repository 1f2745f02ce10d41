"""``python -m watchdog verify``: re-hash and re-check backups; non-zero exit on any failure."""

from __future__ import annotations

import argparse
import sys

from watchdog.cli.common import prepare
from watchdog.data.catalogue import Backup, Catalogue
from watchdog.data.snapshot import verify_backup


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "verify",
        help="re-verify backups (sha256 and integrity_check); exit 1 if any fails",
        description=(
            "Check that each backup's file still has the sha256 its manifest recorded and that the "
            "database in it passes PRAGMA integrity_check. Without arguments: the newest backup "
            "of each tier."
        ),
    )
    parser.add_argument("id", nargs="?", help="one backup id (see `list`)")
    parser.add_argument("--all", action="store_true", help="every backup in the catalogue")
    parser.set_defaults(handler=command)


def chosen(catalogue: Catalogue, args: argparse.Namespace) -> list[Backup] | None:
    if args.id:
        backup = catalogue.find(args.id)
        return [backup] if backup else None
    backups = catalogue.scan()
    if args.all:
        return backups
    return [b for b in catalogue.newest_by_tier(backups).values() if b is not None]


def command(args: argparse.Namespace) -> int:
    if args.id and args.all:
        print("watchdog verify: give an ID or --all, not both", file=sys.stderr)
        return 2
    _, layout = prepare()
    catalogue = Catalogue(layout)
    backups = chosen(catalogue, args)
    if backups is None:
        print(f"watchdog verify: no backup with id {args.id!r} (see `list`)", file=sys.stderr)
        return 1
    if not backups:
        print("no backups to verify")
        return 0
    failed = 0
    for backup in backups:
        verdict = verify_backup(backup, layout.run)
        failed += not verdict.ok
        print(f"{'ok    ' if verdict.ok else 'FAILED'}  {backup.id}  {verdict.detail}")
    if failed:
        print(f"{failed} of {len(backups)} backups failed verification", file=sys.stderr)
    return 1 if failed else 0
