"""``python -m watchdog status``: ask the running watchdog for its health."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from conf.env import read_places_or_exit
from conf.exitcodes import EXIT_REFUSED
from conf.layout import DataLayout
from watchdog.cli.remote import Refused, Unreachable, running_watchdog
from watchdog.web.wording import ago, span


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "status",
        help="show the running watchdog's health (exit 0 healthy, 1 degraded or unhealthy)",
        description=(
            "Ask the running watchdog of this DATA_DIR (over its loopback admin API) for its "
            "health and say it for a person: "
            "the bot, the database, the disk, each tier's newest backup, offsite, the drill, and "
            "every check that is not healthy with its reason. --json prints the document itself. "
            "Exit 0 healthy, 1 degraded or unhealthy, 3 when no watchdog answers."
        ),
    )
    parser.add_argument("--json", action="store_true", help="print the raw /health document")
    parser.set_defaults(handler=command)


def _when(document: dict[str, Any], iso: str | None) -> str:
    return ago(iso, document.get("time"))


def summarise(document: dict[str, Any]) -> str:
    """/health for a person: one line per part, then what is not healthy and why."""
    bot, db, storage = document["bot"], document["database"], document["storage"]
    backups = document.get("backups", {})
    records = db.get("records")
    lines = [f"ErixCast is {document['status']} (watchdog up {span(document.get('uptime_s'))})"]
    bot_line = str(bot["status"]).replace("_", " ")
    if bot.get("pid"):
        bot_line += f" (pid {bot['pid']})"
    if bot.get("heartbeat_age_s") is not None:
        bot_line += f", last poll {span(bot['heartbeat_age_s'])} ago"
    restarts = bot.get("restarts", 0)
    bot_line += f", {restarts} restart{'s' if restarts != 1 else ''}"
    if bot.get("crash_loop"):
        bot_line += ", CRASH LOOP"
    lines.append(f"  bot       {bot_line}")
    rows = "rows hidden (STATS_TOKEN)" if records is None else f"{records:,} rows"
    lines.append(
        f"  database  {db['integrity']}, {db['size_mb']} MB, {rows}, "
        f"checked {_when(document, db.get('checked_at'))}"
    )
    lines.append(
        f"  disk      {storage['disk_usage_percent']}% used, {storage.get('free_mb', '?')} MB free"
        f"{'' if storage.get('persistent_disk') else ', not a persistent disk'}"
    )
    tiers = [
        f"{tier} {span(newest['age_s'])} ago"
        for tier, newest in backups.get("tiers", {}).items()
        if newest
    ]
    overdue = backups.get("overdue") or []
    lines.append(
        f"  backups   {', '.join(tiers) or 'none yet'}"
        + (f"; OVERDUE: {', '.join(overdue)}" if overdue else "")
    )
    offsite = backups.get("offsite", {})
    if offsite.get("enabled"):
        newest = offsite.get("newest_id")
        offsite_line = (
            f"newest {newest}, {span(offsite.get('age_s'))} old" if newest else "none yet"
        )
        if offsite.get("failures"):
            offsite_line += f"; {offsite['failures']} failures in a row"
    else:
        offsite_line = "off"
    lines.append(f"  offsite   {offsite_line}")
    drill = backups.get("drill", {})
    if drill.get("last_at"):
        verdict = "passed" if drill.get("ok") else "FAILED"
        lines.append(f"  drill     {verdict} {_when(document, drill['last_at'])}")
    else:
        lines.append("  drill     not run yet")
    problems = [
        f"  {name}: {check['status']} — {check['detail']}"
        for name, check in document["checks"].items()
        if check["status"] != "healthy"
    ]
    if problems:
        lines += ["", "Not healthy:", *problems]
    return "\n".join(lines)


def command(args: argparse.Namespace) -> int:
    places = read_places_or_exit("watchdog")
    layout = DataLayout(root=places.data_dir, database=places.database)
    try:
        remote = running_watchdog(layout)
        if remote is None:
            print(
                f"watchdog status: no watchdog answers for {layout.root} "
                f"(no live address in {layout.admin_file}): the stack is not running",
                file=sys.stderr,
            )
            return EXIT_REFUSED
        document = remote.ask("GET", "/status")
    except (Unreachable, Refused) as error:
        print(f"watchdog status: {error}", file=sys.stderr)
        return EXIT_REFUSED
    print(json.dumps(document, indent=2) if args.json else summarise(document))
    return 0 if document.get("status") == "healthy" else 1
