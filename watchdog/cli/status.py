"""``python -m watchdog status``: ask the running watchdog for its health."""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error

from conf.exitcodes import EXIT_REFUSED
from conf.settings import load_settings_or_exit
from watchdog.web.client import open_direct


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "status",
        help="show the running watchdog's health (exit 0 healthy, 1 degraded or unhealthy)",
        description="Ask the watchdog on this machine (HOST:PORT) for /health and summarise it.",
    )
    parser.add_argument("--json", action="store_true", help="print the raw /health document")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds to wait (default 5)")
    parser.set_defaults(handler=command)


def local_address(host: str, port: int) -> str:
    reachable = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
    return f"http://{reachable}:{port}/health"


def _rows(records: int | None) -> str:
    # null before the first check, and always once STATS_TOKEN is set (/health is anonymous)
    return "row count not shown" if records is None else f"{records} rows"


def summarise(document: dict) -> str:
    bot, db, storage = document["bot"], document["database"], document["storage"]
    lines = [
        f"status:   {document['status']}",
        f"bot:      {bot['status']} (pid {bot['pid']}, restarts {bot['restarts']})",
        f"database: {db['integrity']}, {db['size_mb']} MB, {_rows(db['records'])}",
        f"disk:     {storage['disk_usage_percent']}% used, persistent: {storage['persistent_disk']}",
    ]
    for name, check in document["checks"].items():
        if check["status"] != "healthy":
            lines.append(f"  {name}: {check['status']} — {check['detail']}")
    return "\n".join(lines)


def command(args: argparse.Namespace) -> int:
    settings = load_settings_or_exit("watchdog")
    url = local_address(settings.host, settings.port)
    try:
        with open_direct(url, timeout=args.timeout) as answer:
            document = json.load(answer)
    except urllib.error.HTTPError as error:
        document = json.load(error)
    except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
        print(f"watchdog: no watchdog answering at {url}: {error}", file=sys.stderr)
        return EXIT_REFUSED
    print(json.dumps(document, indent=2) if args.json else summarise(document))
    return 0 if document.get("status") == "healthy" else 1
