"""``python -m bot``: the Telegram bot, normally launched by the watchdog.

``python -m bot replay [--report FILE]`` applies the journal's updates that the database lacks
and exits, for an operator: the bot does the same before it polls, and reports it in run/replay.json.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

from bot import lifeline

DESCRIPTION = """\
ErixCast's Telegram bot: python-telegram-bot polling TELEGRAM_API_URL with TELEGRAM_BOT_TOKEN,
storing users, chats, history and notes in the SQLite database at DATABASE_PATH (default
DATA_DIR/erixcast.db). Normally the watchdog (python -m watchdog run) launches it after checking
the database and relaunches it when it exits; run alone, nothing checks or backs up the data.
Settings come from the environment and .env (see .env.example), never from arguments."""
EPILOG = """\
exit codes: 0 stopped (SIGTERM/SIGINT), 65 the database file cannot be used (deleted or replaced
under the bot), 78 not configured (no token, or Telegram refused it), 2 a bad setting."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bot",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command")
    replay = commands.add_parser(
        "replay",
        help="apply the journal's updates the database lacks, send nothing, and exit",
    )
    replay.add_argument("--report", help="write what was replayed to this file, as JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = _parser().parse_args(argv)  # --help answers and exits here, before the bot exists
    lifeline.arm()  # before anything slow: a bot must not outlive its watchdog
    os.umask(0o077)  # the database and logs it creates are owner-only

    from conf.layout import DataLayout
    from conf.logging import setup_logging
    from conf.settings import load_settings_or_exit

    settings = load_settings_or_exit("bot")
    layout = DataLayout.from_settings(settings)
    setup_logging("bot", settings.log_level, settings.secrets(), layout.logs, settings.log_format)
    layout.ensure()
    if arguments.command == "replay":
        from bot.replay_command import replay

        return replay(settings, layout, arguments.report)
    from bot.app import run

    return run(settings, layout)


if __name__ == "__main__":
    raise SystemExit(main())
