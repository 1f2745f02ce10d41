"""``python -m watchdog backup``: take a verified backup now (safe while the stack runs)."""

from __future__ import annotations

import argparse
import sys
import time

from conf.layout import TIERS
from conf.units import MIB
from watchdog.cli.common import keeper_for, prepare
from watchdog.cli.progress import Progress
from watchdog.data.backups import BackupSkipped
from watchdog.data.snapshot import SnapshotError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "backup",
        help="take a verified backup now",
        description=(
            "Snapshot the database with SQLite's online backup API, verify it (integrity_check, "
            "sha256, row counts) and add it to the catalogue; then apply the tier's retention. "
            "Safe while the stack runs: the bot keeps writing."
        ),
    )
    parser.add_argument("--tier", choices=TIERS, default="manual", help="default: manual")
    parser.add_argument("--reason", default="manual (command line)", help="noted in the manifest")
    parser.set_defaults(handler=command)


def command(args: argparse.Namespace) -> int:
    settings, layout = prepare()
    keeper = keeper_for(settings, layout)
    try:
        with Progress().running(f"{args.tier} backup: copying and proving it"):
            outcome = keeper.take(args.tier, args.reason, time.time())
    except (SnapshotError, BackupSkipped) as error:
        print(f"watchdog backup: failed, nothing was added: {error}", file=sys.stderr)
        return 1
    assert outcome.backup is not None
    manifest = outcome.backup.manifest
    print(
        f"backup {manifest.id} ({manifest.tier}): {manifest.size_bytes / MIB:.2f} MB, "
        f"{sum(manifest.rows.values())} rows, verified in {manifest.duration_s:.2f} s"
    )
    print(f"  {outcome.backup.data_path}")
    for pruned in outcome.pruned:
        print(f"  pruned {pruned} (retention)")
    return 0
