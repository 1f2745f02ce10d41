"""``python -m bot``: the Telegram bot, normally launched by the watchdog.

``python -m bot replay [--report FILE]`` applies the journal's updates that the database lacks
and exits (the watchdog runs it after a recovery; the bot also does it before it polls).
"""

from __future__ import annotations

import argparse
import os

from bot import lifeline


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bot",
        description="The ErixCast Telegram bot (normally launched by the watchdog).",
    )
    commands = parser.add_subparsers(dest="command")
    replay = commands.add_parser(
        "replay",
        help="apply the journal's updates the database lacks, send nothing, and exit",
    )
    replay.add_argument("--report", help="write what was replayed to this file, as JSON")
    return parser


def main(argv: list[str] | None = None) -> int:
    lifeline.arm()  # before anything slow: a bot must not outlive its watchdog
    os.umask(0o077)  # the database and logs it creates are owner-only
    arguments = _parser().parse_args(argv)

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
