"""``python -m watchdog drill``: restore each tier's newest backup into a scratch file and prove it."""

from __future__ import annotations

import argparse
from typing import Any

from conf.layout import DataLayout
from watchdog.cli.common import fail, locate, prepare
from watchdog.cli.progress import Progress
from watchdog.cli.remote import Refused, Unreachable, reach


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "drill",
        help="restore drill: each tier's newest backup restored to a scratch file and checked",
        description=(
            "For the newest backup of every tier: decompress or copy it to a scratch file, check "
            "its sha256 and integrity_check, and read every table back to the manifest's row "
            "counts. The live database is not touched. While the stack runs, the running "
            "watchdog drills (and records the result in /health). Exit 1 if any fails or there "
            "is none."
        ),
    )
    parser.set_defaults(handler=command)


def drill_here(layout: DataLayout) -> list[dict[str, Any]]:
    """No watchdog runs: the drill, by this process."""
    from watchdog.data.catalogue import Catalogue
    from watchdog.data.drill import run_drill
    from watchdog.runtime.actions import drill_answer

    return drill_answer(run_drill(Catalogue(layout), layout.run))


def command(args: argparse.Namespace) -> int:
    layout = locate()
    progress = Progress()
    try:
        with reach(layout, hold=False) as remote:
            if remote is not None:
                results = remote.run("drill", {}, progress)["results"]
            else:
                with progress.running("restore drill: restoring each tier's newest backup"):
                    results = drill_here(prepare()[1])
    except (Unreachable, Refused) as error:
        return fail("drill", str(error))
    if not results:
        print("no backups: nothing to drill")
        return 1
    for result in results:
        mark = "ok    " if result["ok"] else "FAILED"
        print(
            f"{mark}  {result['tier']:<8} {result['id']}  {result['detail']}  "
            f"({result['seconds']:.2f} s)"
        )
    return 0 if all(result["ok"] for result in results) else 1
