"""``python -m watchdog verify``: re-hash and re-check backups; non-zero exit on any failure."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from conf.layout import DataLayout
from watchdog.cli.common import fail, locate, megabytes, prepare
from watchdog.cli.progress import Progress
from watchdog.cli.remote import Refused, Unreachable, reach


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "verify",
        help="re-verify backups (sha256 and integrity_check); exit 1 if any fails",
        description=(
            "Check that each backup's file still has the sha256 its manifest recorded and that the "
            "database in it passes PRAGMA integrity_check. Without arguments: the newest backup "
            "of each tier. While the stack runs, the running watchdog does the checking."
        ),
    )
    parser.add_argument("id", nargs="?", help="one backup id (see `list`)")
    parser.add_argument("--all", action="store_true", help="every backup in the catalogue")
    parser.set_defaults(handler=command)


def verify_here(
    layout: DataLayout, args: argparse.Namespace, progress: Progress
) -> list[dict[str, Any]]:
    """No watchdog runs: the checks, by this process."""
    from watchdog.data.catalogue import Catalogue
    from watchdog.runtime.actions import chosen_backups, verify_answer

    backups = chosen_backups(Catalogue(layout), args.id, args.all)
    if backups is None:
        raise Refused(f"no backup with id {args.id!r} (see `list`)")
    results = []
    with progress.running("verifying") as step:
        for number, backup in enumerate(backups, 1):
            step.say(f"[{number}/{len(backups)}] verifying {backup.id}")
            results.append(verify_answer(backup, layout.run))
    return results


def command(args: argparse.Namespace) -> int:
    if args.id and args.all:
        return fail("verify", "give an ID or --all, not both", 2)
    layout = locate()
    progress = Progress()
    try:
        with reach(layout, hold=False) as remote:
            if remote is not None:
                body = {"id": args.id, "all": args.all}
                results = remote.run("verify", body, progress)["results"]
            else:
                results = verify_here(prepare()[1], args, progress)
    except (Unreachable, Refused) as error:
        return fail("verify", str(error))
    if not results:
        print("no backups to verify")
        return 0
    for result in results:
        print(verdict_line(result))
    failed = sum(not result["ok"] for result in results)
    if failed:
        print(f"{failed} of {len(results)} backups failed verification", file=sys.stderr)
    else:
        print(f"{len(results)} backup{'s' if len(results) != 1 else ''} verified")
    return 1 if failed else 0


def verdict_line(result: dict[str, Any]) -> str:
    """``verified  ID  (tier, 5.00 MB): sha256 matches, integrity_check ok  0.12 s`` or
    ``FAILED    ID  (tier, …): what is wrong``."""
    what = f"{result['id']}  ({result['tier']}, {megabytes(result['size_bytes'])} MB)"
    if result["ok"]:
        return f"verified  {what}: sha256 matches, integrity_check ok  ({result['seconds']:.2f} s)"
    return f"FAILED    {what}: {result['detail']}"
