"""``python -m watchdog migrate``: move the bot's data to PostgreSQL, or back.

``--to postgresql://…`` copies the live SQLite database (a consistent snapshot of it) into an
empty PostgreSQL database, verifies it and says how to switch over; run again after a kill, it
continues where it stopped. ``--from postgresql://… --to-sqlite PATH`` makes a new SQLite file
of a PostgreSQL database for a downgrade, proven like any backup and taken into the catalogue.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from conf.database_url import DatabaseURL, parse_database_url
from conf.layout import DataLayout
from watchdog.cli.common import fail, prepare
from watchdog.cli.progress import Progress

NAME = "migrate"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        NAME,
        help="copy the database to PostgreSQL (--to URL), or back to SQLite (--from URL --to-sqlite)",
        description=(
            "--to postgresql://USER@HOST/DB: copy DATABASE_PATH, from a snapshot taken with "
            "SQLite's online backup API, into an EMPTY PostgreSQL database (the schema of "
            "conf/schema_pg.sql), verify it, and print what to change to switch over. Killed, it "
            "continues from the last committed batch when run again. Stop the stack first for "
            "the real move: what the bot writes after the snapshot is not copied (a run with "
            "the stack up is a rehearsal). --from URL --to-sqlite PATH: the reverse, for a "
            "downgrade: a new SQLite file, proven (schema, integrity_check) and added to the "
            "backup catalogue, installed with `python -m watchdog restore ID`. Leave the "
            "password out of the URL and set PGPASSWORD instead to keep it out of the shell's "
            "history; it is never printed."
        ),
    )
    direction = parser.add_mutually_exclusive_group(required=True)
    direction.add_argument("--to", metavar="URL", help="SQLite → this PostgreSQL database")
    direction.add_argument("--from", dest="source", metavar="URL", help="PostgreSQL → SQLite")
    parser.add_argument("--to-sqlite", metavar="PATH", type=Path, help="with --from: the new file")
    parser.add_argument(
        "--batch-rows",
        type=int,
        default=None,
        metavar="N",
        help="rows per committed batch (default 20000)",
    )
    parser.set_defaults(handler=command)


def command(args: argparse.Namespace) -> int:
    from watchdog.rules.migrate import BATCH_ROWS

    batch_rows = args.batch_rows or BATCH_ROWS
    if batch_rows < 1:
        return fail(NAME, "--batch-rows must be at least 1", 2)
    if args.to is not None and args.to_sqlite is not None:
        return fail(NAME, "--to-sqlite goes with --from", 2)
    if args.source is not None and args.to_sqlite is None:
        return fail(NAME, "--from needs --to-sqlite PATH (the new SQLite file)", 2)
    option, given = ("--to", args.to) if args.to is not None else ("--from", args.source)
    try:
        url = parse_database_url(given)
    except ValueError as error:
        return fail(NAME, f"{option}: {error}", 2)
    _settings, layout = prepare()
    if args.to is not None:
        return to_postgres(layout, url, batch_rows)
    return to_sqlite(layout, url, args.to_sqlite, batch_rows)


def to_postgres(layout: DataLayout, url: DatabaseURL, batch_rows: int) -> int:
    from watchdog.data.migrate import MigrateError, migrate_to, stack_stopped

    try:
        with stack_stopped(layout) as stopped, Progress().running("migrating") as step:
            if not stopped:
                print(
                    "the stack is running: migrating from a snapshot taken now (a rehearsal; "
                    "what the bot writes later is not copied)"
                )
            outcome = migrate_to(layout, url, step.say, live=not stopped, batch_rows=batch_rows)
    except MigrateError as error:
        return fail(NAME, str(error))
    print("\n".join(outcome.lines))
    return 0


def to_sqlite(layout: DataLayout, url: DatabaseURL, path: Path, batch_rows: int) -> int:
    from watchdog.data.migrate_back import migrate_back
    from watchdog.data.migrate_pg import MigrateError
    from watchdog.version import app_version

    path = path.expanduser().absolute()
    try:
        with Progress().running("migrating back") as step:
            done = migrate_back(url, path, layout, step.say, app_version(), batch_rows)
    except MigrateError as error:
        return fail(NAME, str(error))
    print(
        f"{done.rows} rows copied to {done.path} and verified (row counts, key sums, sampled "
        "rows column by column); the bot's schema, integrity_check and the search indexes' "
        f"check passed; taken into the catalogue as backup {done.backup_id}"
    )
    print("to install it (downgrade to SQLite):")
    print("  1. stop the stack (every instance on this PostgreSQL database)")
    print("  2. unset DATABASE_URL in the environment or .env")
    print(f"  3. python -m watchdog restore {done.backup_id} --yes")
    print("  4. start the stack: the bot reads and writes SQLite again")
    return 0
