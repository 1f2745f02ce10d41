"""``python -m bot replay``: the journal's missing updates applied to the database, once, for an
operator (README "Restoring by hand"); the bot does the same at each start, so nothing else runs it."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from bot.replay import replay_journal, write_report
from bot.storage import DatabaseThread, Storage
from conf.exitcodes import EXIT_DATABASE, EXIT_OK, EXIT_REFUSED
from conf.layout import DataLayout
from conf.settings import Settings

log = logging.getLogger("bot")

PLACEHOLDER_TOKEN = "0:replay"
"""Replay reaches no Bot API; without a token it still needs one to build a bot."""


def replay(settings: Settings, layout: DataLayout, report_path: str | None) -> int:
    if settings.database_server is not None:
        log.error(
            "nothing to replay: with DATABASE_URL the server is where updates are durable, and "
            "the bot keeps no update journal (replay is for the SQLite file's journal)"
        )
        return EXIT_REFUSED
    token = settings.telegram_bot_token
    db_thread = DatabaseThread()
    try:
        storage = db_thread.call(Storage.open, layout.database)
    except Exception:
        log.exception("cannot open the database %s to replay the journal", layout.database)
        db_thread.shutdown()
        return EXIT_DATABASE
    try:
        report = asyncio.run(
            replay_journal(
                token.get_secret_value() if token is not None else PLACEHOLDER_TOKEN,
                layout.journal,
                storage,
                db_thread,
            )
        )
    except Exception as error:
        log.error("replay failed: %s", type(error).__name__, exc_info=error)
        return EXIT_DATABASE
    finally:
        try:
            db_thread.call(storage.close)
        finally:
            db_thread.shutdown()
    log.info("%s", report.summary())
    if report_path:
        write_report(Path(report_path), report.as_dict())
    return EXIT_OK
