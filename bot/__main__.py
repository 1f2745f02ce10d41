"""``python -m bot``: the Telegram bot, normally launched by the watchdog."""

from __future__ import annotations

import os

from bot import lifeline


def main() -> int:
    lifeline.arm()  # before anything slow: a bot must not outlive its watchdog
    os.umask(0o077)  # the database and logs it creates are owner-only

    from bot.app import run
    from conf.layout import DataLayout
    from conf.logging import setup_logging
    from conf.settings import load_settings_or_exit

    settings = load_settings_or_exit("bot")
    layout = DataLayout.from_settings(settings)
    setup_logging("bot", settings.log_level, settings.secrets(), layout.logs)
    layout.ensure()
    return run(settings, layout)


if __name__ == "__main__":
    raise SystemExit(main())
