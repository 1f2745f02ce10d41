"""``python -m watchdog <command>``: one module per command, each with ``add_parser`` and ``command``.

Only the named command's module is imported (all of them for the overall ``--help``): a command
that asks the running watchdog stays a small process, whatever the others need."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence
from types import ModuleType

COMMANDS = (
    "run",
    "status",
    "backup",
    "list",
    "verify",
    "restore",
    "drill",
    "offsite-release",
    "migrate",
)
"""The commands in the order ``--help`` lists them; ``offsite-release`` is ``offsite_release.py``."""


def command_module(name: str) -> ModuleType:
    return importlib.import_module(f"watchdog.cli.{name.replace('-', '_')}")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or of ``only`` (the same parser for that command)."""
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
    for name in COMMANDS if only is None else (only,):
        command_module(name).add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    named = args[0] if args and args[0] in COMMANDS else None
    parsed = build_parser(named).parse_args(args)
    return int(parsed.handler(parsed))
