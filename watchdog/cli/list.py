"""``python -m watchdog list``: the backup catalogue, newest first."""

from __future__ import annotations

import argparse
import json

from conf.layout import TIERS
from watchdog.catalogue import Backup, Catalogue
from watchdog.cli.common import MB, age, prepare


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "list",
        help="list verified backups (tier, id, age, size, rows)",
        description="Every verified backup in DATA_DIR/backups, newest first.",
    )
    parser.add_argument("--tier", choices=TIERS, help="only this tier")
    parser.add_argument("--json", action="store_true", help="manifests as JSON")
    parser.set_defaults(handler=command)


def table(backups: list[Backup], now: float | None = None) -> str:
    headers = ("TIER", "ID", "AGE", "SIZE MB", "ROWS", "VERIFIED")
    rows = [
        (
            b.tier,
            b.id,
            age(b.created_at, now),
            f"{b.manifest.size_bytes / MB:.2f}" + (" (zst)" if b.manifest.compression else ""),
            str(sum(b.manifest.rows.values())),
            "yes",
        )
        for b in backups
    ]
    widths = [
        max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=False)
    ]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in (headers, *rows)
    ]
    return "\n".join(line.rstrip() for line in lines)


def command(args: argparse.Namespace) -> int:
    _, layout = prepare()
    backups = [b for b in Catalogue(layout).scan() if args.tier in (None, b.tier)]
    backups.reverse()
    if args.json:
        print(json.dumps([json.loads(b.manifest.to_json()) for b in backups], indent=2))
    elif not backups:
        print("no backups yet")
    else:
        print(table(backups))
    return 0
