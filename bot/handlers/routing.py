"""Which handler gets which update.

The rate gate sees every update first (group -2), every message (and every edit) is recorded
next (group -1), commands run in group 0.
"""

from __future__ import annotations

import logging
from pathlib import Path

from telegram import Update
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ConversationHandler,
    MessageHandler,
    TypeHandler,
    filters,
)

from bot.export import clean_exports
from bot.handlers.account import AccountHandlers, refresh_conversation_states
from bot.handlers.admin import AdminHandlers
from bot.handlers.errors import on_error
from bot.handlers.history import HistoryHandlers
from bot.handlers.notes import CONVERSATION_NAME, DRAFTING, NoteHandlers
from bot.journaling import BatchJournal
from bot.limits import LimitSettings, UserLimits
from bot.persistence import SQLitePersistence
from bot.storage import DatabaseThread, Storage
from bot.watchdog_client import WatchdogClient

log = logging.getLogger("bot.handlers")

SHARED_STATE_GROUP = -3
"""First of all, on a shared server: the conversation states as the database holds them (and,
through python-telegram-bot's refresh of the context, the user's and chat's data)."""
GATE_GROUP = -2
"""Runs before everything else, for every update: the rate limit."""
TRACKING_GROUP = -1
"""Runs before the command handlers (group 0), for every message."""


def register(
    application: Application,
    storage: Storage,
    db_thread: DatabaseThread,
    *,
    admin_ids: tuple[int, ...] = (),
    watchdog: WatchdogClient | None = None,
    persistence: SQLitePersistence | None = None,
    journal: BatchJournal | None = None,
    replaying: bool = False,
    limits: LimitSettings | None = None,
    exports: Path | None = None,
) -> None:
    """``replaying``: the updates come from the journal (:mod:`bot.replay`): administrators'
    commands are left out — a replayed ``/backup`` must not take a backup — and no rate limit
    applies: each update was acknowledged once already (the quota does, as it did then).
    ``limits`` default to the settings' defaults; what an interrupted export left in
    ``exports`` (the bot's ``DataLayout.exports``; None in replay) is removed here, at the
    bot's start."""
    if limits is None:
        limits = LimitSettings.defaults()
    if exports is not None and not replaying:
        removed = clean_exports(exports)
        if removed:
            log.info("removed %s files an interrupted /export left", removed)
    services = {
        "storage": storage,
        "db": db_thread,
        "admin_ids": frozenset(admin_ids),
        "watchdog": watchdog or WatchdogClient(None, None),
        "persistence": persistence,
        "journal": None if replaying else journal,
    }
    shared = UserLimits.build(limits, replaying=replaying)
    history = HistoryHandlers(**services, limits=shared)
    notes = NoteHandlers(**services, limits=shared)
    account = AccountHandlers(**services, limits=shared, exports=exports)
    admin = AdminHandlers(**services)

    if persistence is not None and persistence.shared:
        # Several instances on one server: each update starts from the database's state.
        async def refresh(update: Update, context: object) -> None:
            await refresh_conversation_states(application, persistence, update)

        application.add_handler(TypeHandler(Update, refresh), group=SHARED_STATE_GROUP)
    if shared.rate is not None:
        application.add_handler(TypeHandler(Update, history.gate), group=GATE_GROUP)

    new_messages = filters.UpdateType.MESSAGE  # an edited "/start" is not run twice
    application.add_handler(
        MessageHandler(
            filters.UpdateType.MESSAGE | filters.UpdateType.EDITED_MESSAGE, history.record
        ),
        group=TRACKING_GROUP,
    )
    conversation = ConversationHandler(
        entry_points=[CommandHandler("remember", notes.remember, filters=new_messages)],
        states={
            DRAFTING: [
                MessageHandler(filters.TEXT & ~filters.COMMAND & new_messages, notes.draft_part),
                CommandHandler("done", notes.draft_done, filters=new_messages),
            ]
        },
        fallbacks=[CommandHandler("cancel", notes.draft_cancel, filters=new_messages)],
        allow_reentry=True,
        name=CONVERSATION_NAME,
        persistent=application.persistence is not None,
    )
    application.add_handler(conversation)
    for command, callback in (
        ("start", account.start),
        ("help", account.help),
        ("notes", notes.notes),
        ("forget", notes.forget),
        ("search", notes.search),
        ("stats", account.stats),
        ("export", account.export),
        ("deleteme", account.deleteme),
        ("done", notes.no_draft),
        ("cancel", notes.no_draft),
    ):
        application.add_handler(CommandHandler(command, callback, filters=new_messages))
    admin_commands = (
        ("status", admin.status),
        ("backup", admin.backup),
        ("backups", admin.backups),
    )
    for command, callback in () if replaying else admin_commands:
        application.add_handler(CommandHandler(command, callback, filters=new_messages))
    application.add_handler(CallbackQueryHandler(account.deleteme_answer, pattern=r"^deleteme:"))
    application.add_handler(CallbackQueryHandler(notes.notes_button, pattern=r"^notes:"))
    application.add_handler(MessageHandler(filters.COMMAND & new_messages, account.unknown))
    application.add_error_handler(on_error)
