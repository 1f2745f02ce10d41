"""``python -m watchdog list``: the backup catalogue, newest first: the running watchdog's when
the stack runs, read here otherwise. ``--offsite`` reads the offsite branch (never DATA_DIR's
data), always from this process."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from conf.layout import TIERS
from conf.units import MIB
from watchdog.cli.common import age, fail, locate, prepare
from watchdog.cli.remote import Refused, Unreachable, reach


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "list",
        help="list verified backups (tier, id, age, size, rows)",
        description="Every verified backup in DATA_DIR/backups, newest first.",
    )
    parser.add_argument("--tier", choices=TIERS, help="only this tier")
    parser.add_argument("--json", action="store_true", help="manifests as JSON")
    parser.add_argument(
        "--offsite", action="store_true", help="the backups on the offsite git branch instead"
    )
    parser.add_argument(
        "--allow-unauthenticated",
        action="store_true",
        help="with --offsite, also list old packages that carry no MAC (not proven to be yours)",
    )
    parser.set_defaults(handler=command)


def table(manifests: list[dict[str, Any]], now: float | None = None) -> str:
    headers = ("TIER", "ID", "AGE", "SIZE MB", "ROWS", "VERIFIED")
    rows = [
        (
            m["tier"],
            m["id"],
            age(m["created_at"], now),
            f"{m['size_bytes'] / MIB:.2f}" + (" (zst)" if m.get("compression") else ""),
            str(sum(m["rows"].values())),
            "yes",
        )
        for m in manifests
    ]
    widths = [
        max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=False)
    ]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in (headers, *rows)
    ]
    return "\n".join(line.rstrip() for line in lines)


def offsite_command(args: argparse.Namespace, settings) -> int:  # type: ignore[no-untyped-def]
    from watchdog.offsite import OffsiteError, OffsiteStore

    try:
        store = OffsiteStore.from_settings(
            settings, read_only=True, allow_unauthenticated=args.allow_unauthenticated
        )
        if store is None:
            print("watchdog list: no offsite store configured (BACKUP_GIT_URL)", file=sys.stderr)
            return 1
        found = store.candidates()
        entries = [e for e in found.entries if args.tier in (None, e.tier)]
    except OffsiteError as error:
        print(f"watchdog list: {error}", file=sys.stderr)
        return 1
    for package in found.refused:
        print(f"refused: {package.id}: {package.reason}", file=sys.stderr)
    if args.json:
        print(json.dumps([{**vars(e), "created_iso": e.created_iso} for e in entries], indent=2))
    elif not entries:
        print("no offsite backups yet")
    else:
        print("TIER     ID                                AGE      SIZE MB  PARTS  ENCRYPTED")
        for e in entries:
            print(
                f"{e.tier:<8} {e.id:<33} {age(e.created_at):<8} {e.size_bytes / MIB:>7.2f}  "
                f"{e.parts:>5}  {'yes' if e.encrypted else 'NO'}"
            )
    return 0


def command(args: argparse.Namespace) -> int:
    if args.offsite:
        return offsite_command(args, prepare()[0])
    layout = locate()
    try:
        with reach(layout, hold=False) as remote:
            if remote is not None:
                query = f"?tier={args.tier}" if args.tier else ""
                backups = remote.ask("GET", f"/catalogue{query}")["backups"]
            else:
                from watchdog.data.catalogue import Catalogue
                from watchdog.runtime.actions import catalogue_answer

                backups = catalogue_answer(Catalogue(prepare()[1]), args.tier)
    except (Unreachable, Refused) as error:
        return fail("list", str(error))
    if args.json:
        print(json.dumps(backups, indent=2))
    elif not backups:
        print("no backups yet")
    else:
        print(table(backups))
    return 0
