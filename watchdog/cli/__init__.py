"""``python -m watchdog <command>``: one module per command, each with ``add_parser`` and ``command``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from watchdog.cli import backup, drill, migrate, offsite_release, restore, run, status, verify
from watchdog.cli import list as list_command

COMMANDS = (run, status, backup, list_command, verify, restore, drill, offsite_release, migrate)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m watchdog",
        description="ErixCast's watchdog: keeps the bot running and its SQLite database safe.",
        epilog=(
            "Run from the repository with its virtualenv (made by `make run` or `make install`): "
            "`.venv/bin/python -m watchdog COMMAND`, or `source .venv/bin/activate` first. "
            "`python -m watchdog COMMAND --help` describes each command."
        ),
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.handler(args))
