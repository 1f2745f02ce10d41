"""``python -m watchdog verify``: re-hash and re-check backups; non-zero exit on any failure."""

from __future__ import annotations

import argparse
import sys
import time

from conf.units import MIB
from watchdog.cli.common import prepare
from watchdog.cli.progress import Progress
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
    progress = Progress()
    for number, backup in enumerate(backups, 1):
        with progress.running(f"[{number}/{len(backups)}] verifying {backup.id}"):
            started = time.monotonic()
            verdict = verify_backup(backup, layout.run)
        failed += not verdict.ok
        print(verdict_line(backup, verdict.ok, verdict.detail, time.monotonic() - started))
    if failed:
        print(f"{failed} of {len(backups)} backups failed verification", file=sys.stderr)
    else:
        print(f"{len(backups)} backup{'s' if len(backups) != 1 else ''} verified")
    return 1 if failed else 0


def verdict_line(backup: Backup, ok: bool, detail: str, seconds: float) -> str:
    """``verified  ID  (tier, 5.00 MB): sha256 matches, integrity_check ok  0.12 s`` or
    ``FAILED    ID  (tier, …): what is wrong``."""
    what = f"{backup.id}  ({backup.tier}, {backup.manifest.size_bytes / MIB:.2f} MB)"
    if ok:
        return f"verified  {what}: sha256 matches, integrity_check ok  ({seconds:.2f} s)"
    return f"FAILED    {what}: {detail}"
