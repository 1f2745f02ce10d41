"""``python -m watchdog backup``: take a verified backup now (safe while the stack runs)."""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING, Any

from conf.layout import TIERS, DataLayout
from watchdog.cli.common import fail, keeper_for, locate, megabytes, prepare
from watchdog.cli.progress import Progress
from watchdog.cli.remote import Refused, Unreachable, reach

if TYPE_CHECKING:
    from conf.settings import Settings


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "backup",
        help="take a verified backup now",
        description=(
            "Snapshot the database (SQLite's online backup API, or a plain copy under a read "
            "transaction when every commit is in the main file), verify it (integrity_check, "
            "sha256, row counts) and add it to the catalogue; then apply the tier's retention. "
            "Safe while the stack runs: the running watchdog takes it (the bot keeps writing); "
            "with no watchdog running, this command does."
        ),
    )
    parser.add_argument("--tier", choices=TIERS, default="manual", help="default: manual")
    parser.add_argument("--reason", default="manual (command line)", help="noted in the manifest")
    parser.set_defaults(handler=command)


def take_here(settings: Settings, layout: DataLayout, args: argparse.Namespace) -> dict[str, Any]:
    """No watchdog runs (the caller holds its lock): the backup, by this process."""
    from watchdog.data.backups import BackupSkipped
    from watchdog.data.snapshot import SnapshotError
    from watchdog.runtime.actions import backup_answer

    try:
        outcome = keeper_for(settings, layout).take(args.tier, args.reason, time.time())
    except (SnapshotError, BackupSkipped) as error:
        raise Refused(str(error)) from None
    return backup_answer(outcome)


def command(args: argparse.Namespace) -> int:
    layout = locate()
    progress = Progress()
    try:
        with reach(layout, hold=True) as remote:
            if remote is not None:
                body = {"tier": args.tier, "reason": args.reason}
                answer = remote.run("backup", body, progress)
            else:
                settings, layout = prepare()
                with progress.running(f"{args.tier} backup: copying and proving it"):
                    answer = take_here(settings, layout, args)
    except Unreachable as error:
        return fail("backup", f"nothing was done: {error}")
    except Refused as error:
        return fail("backup", f"failed, nothing was added: {error}")
    show(answer)
    return 0


def show(answer: dict[str, Any]) -> None:
    manifest = answer["manifest"]
    print(
        f"backup {manifest['id']} ({manifest['tier']}): {megabytes(manifest['size_bytes'])} MB, "
        f"{sum(manifest['rows'].values())} rows, verified in {manifest['duration_s']:.2f} s"
    )
    print(f"  {answer['path']}")
    for pruned in answer["pruned"]:
        print(f"  pruned {pruned} (retention)")
