"""``python -m watchdog drill``: restore each tier's newest backup into a scratch file and prove it."""

from __future__ import annotations

import argparse

from watchdog.cli.common import prepare
from watchdog.cli.progress import Progress
from watchdog.data.catalogue import Catalogue
from watchdog.data.drill import run_drill


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "drill",
        help="restore drill: each tier's newest backup restored to a scratch file and checked",
        description=(
            "For the newest backup of every tier: decompress or copy it to a scratch file, check "
            "its sha256 and integrity_check, and read every table back to the manifest's row "
            "counts. The live database is not touched. Exit 1 if any fails or there is none."
        ),
    )
    parser.set_defaults(handler=command)


def command(args: argparse.Namespace) -> int:
    _, layout = prepare()
    with Progress().running("restore drill: restoring each tier's newest backup"):
        results = run_drill(Catalogue(layout), layout.run)
    if not results:
        print("no backups: nothing to drill")
        return 1
    for result in results:
        mark = "ok    " if result.ok else "FAILED"
        print(f"{mark}  {result.tier:<8} {result.id}  {result.detail}  ({result.seconds:.2f} s)")
    return 0 if all(result.ok for result in results) else 1
