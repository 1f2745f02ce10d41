"""Builds the python-telegram-bot Application, runs it, and turns failures into exit codes."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable

from telegram import Update
from telegram.error import InvalidToken
from telegram.ext import Application, ApplicationBuilder, BasePersistence
from telegram.request import HTTPXRequest

from bot import handlers, lifeline
from bot.durable import DurableBot, UpdateLedger
from bot.heartbeat import Heartbeat, HeartbeatRequest
from bot.journaling import BatchJournal
from bot.limits import LimitSettings
from bot.persistence import SQLitePersistence
from bot.processor import DurableUpdateProcessor
from bot.replay import remember_identity, replay_at_start
from bot.retry_after import RetryAfterLimiter
from bot.storage import DatabaseReplaced, DatabaseThread, Storage, why_not_opened
from bot.watchdog_client import WatchdogClient
from bot.webhook_inbox import WebhookInbox
from conf.exitcodes import EXIT_DATABASE, EXIT_NOT_CONFIGURED, EXIT_OK
from conf.journal import JournalWriter
from conf.layout import DataLayout
from conf.settings import Settings

log = logging.getLogger("bot")

EXIT_FAILED = 1
BOOTSTRAP_RETRIES = -1
"""Telegram unreachable at start-up: retry with backoff (1 s growing to 30 s), never crash-loop."""

PersistenceFactory = Callable[[Storage, DatabaseThread], BasePersistence]


class _TelegramLogFilter(logging.Filter):
    """python-telegram-bot logs a rejected token at start-up with a long traceback; ``run`` says
    the same in one line, so that record is dropped. Errors of the polling loop (409 Conflict,
    network errors, a 401) become one line each instead of a traceback every few seconds."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if error is None:
            return True
        message = record.getMessage()
        if isinstance(error, InvalidToken) and "Bootstrap" in message:
            return False
        if message.startswith("Can not load invalid JSON data"):
            # A 502 page instead of JSON: the NetworkError that follows says it all.
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            return True
        if "polling" in message.lower() or "Polling Updates" in message:
            record.msg = (
                "%s (%s: %s); retrying with backoff"
                if not isinstance(error, InvalidToken)
                else "%s (%s: %s)"
            )
            record.args = (message.rstrip("."), type(error).__name__, error)
            record.exc_info = None
            record.exc_text = None
        return True


def build_application(
    settings: Settings,
    layout: DataLayout,
    storage: Storage,
    db_thread: DatabaseThread,
    *,
    persistence_factory: PersistenceFactory | None = None,
    durable: bool = True,
    journal: JournalWriter | None = None,
    inbox: WebhookInbox | None = None,
) -> Application:
    """The application: our persistence and durable update processing unless told otherwise
    (the benchmark builds the PicklePersistence baseline with ``durable=False``). With an
    ``inbox`` (webhook mode) updates are claimed before they are handled and confirmed by the
    inbox's HTTP answers; on a server database each update is its own transaction (see
    :mod:`bot.claims`)."""
    assert settings.telegram_bot_token is not None
    persistence = (
        persistence_factory(storage, db_thread)
        if persistence_factory is not None
        # Webhook instances on one server each commit every update on its own: they read the
        # rows afresh before each update (another instance may have handled the last one).
        else SQLitePersistence(
            storage, db_thread, shared=inbox is not None and not storage.is_sqlite
        )
    )
    ledger = UpdateLedger() if durable and inbox is None else None
    bot = DurableBot(
        settings.telegram_bot_token.get_secret_value(),
        base_url=settings.telegram_api_url,
        request=HTTPXRequest(connection_pool_size=16),
        get_updates_request=HeartbeatRequest(Heartbeat(layout.heartbeat_file)),
        rate_limiter=RetryAfterLimiter(),
        ledger=ledger,
    )
    builder = (
        ApplicationBuilder()
        .bot(bot)
        .persistence(persistence)
        .post_init(functools.partial(_started, settings=settings, layout=layout))
    )
    processor = None
    batch_journal = BatchJournal(journal) if journal is not None else None
    if durable:
        confirmations = inbox if inbox is not None else ledger
        assert confirmations is not None
        one_at_a_time = inbox is not None and not storage.is_sqlite
        processor = DurableUpdateProcessor(
            storage,
            db_thread,
            confirmations,
            persistence if isinstance(persistence, SQLitePersistence) else None,
            journal=batch_journal,
            claims=inbox is not None,
            **({"max_batch": 1, "max_concurrent": 1} if one_at_a_time else {}),
        )
        builder = builder.concurrent_updates(processor).post_stop(_finish_processor)
    application = builder.build()
    if processor is not None:
        processor.attach(application)
    bot.set_unauthorized_callback(application.stop_running)
    handlers.register(
        application,
        storage,
        db_thread,
        admin_ids=settings.admin_ids,
        watchdog=WatchdogClient(settings.watchdog_url, settings.watchdog_secret),
        persistence=persistence if isinstance(persistence, SQLitePersistence) else None,
        journal=batch_journal,
        limits=LimitSettings.from_settings(settings),
        exports=layout.exports,
    )
    return application


async def _finish_processor(application: Application) -> None:
    """Polling stopped: the last batch commits, and its messages are sent, while the bot can
    still reach Telegram (python-telegram-bot shuts the bot down before the processor)."""
    processor = application.update_processor
    if isinstance(processor, DurableUpdateProcessor):
        await processor.finish()


async def _started(application: Application, *, settings: Settings, layout: DataLayout) -> None:
    """Polling is about to start: remember who the bot is (replay needs its username), and
    publish the command menu alongside the first getUpdates, not before it (one Bot API round
    trip per administrator, and the menu is not needed to answer)."""
    try:
        remember_identity(layout.journal, application.bot.bot.to_dict())
    except OSError as error:
        log.warning("cannot remember the bot's identity for replay: %s", error)
    task = asyncio.create_task(
        _publish_commands(application, settings.admin_ids), name="publish commands"
    )
    _BACKGROUND.add(task)
    task.add_done_callback(_BACKGROUND.discard)


_BACKGROUND: set[asyncio.Task[None]] = set()
"""Start-up work that runs beside polling (a task must be referenced until it ends)."""


async def _publish_commands(application: Application, admin_ids: tuple[int, ...]) -> None:
    try:
        await handlers.publish_commands(application, admin_ids=admin_ids)
    except InvalidToken:
        # A refused token stops polling too (the bot's unauthorized callback): nothing to add.
        log.error("Telegram refused TELEGRAM_BOT_TOKEN while the command menu was published")


def serve_webhook(
    settings: Settings, where: str, application: Application, inbox: WebhookInbox
) -> None:
    """Webhook mode (``TELEGRAM_WEBHOOK_URL``) until SIGTERM; see :mod:`bot.webhook`."""
    assert settings.telegram_webhook_url is not None
    assert settings.telegram_webhook_secret is not None
    secret = settings.telegram_webhook_secret.get_secret_value()
    from bot.webhook import WebhookReceiver, run_webhook  # aiohttp's server: webhook mode only

    receiver = WebhookReceiver(
        application,
        inbox,
        secret=secret,
        path=settings.webhook_path,
        host=settings.webhook_host,
        port=settings.webhook_port,
    )
    log.info(
        "bot starting in webhook mode: database %s, updates posted to %s",
        where,
        settings.telegram_webhook_url,
    )
    run_webhook(
        application,
        receiver,
        Heartbeat(DataLayout.from_settings(settings).heartbeat_file),
        url=settings.telegram_webhook_url,
        secret=secret,
        stop_signals=lifeline.stop_signals(),
    )


def open_journal(layout: DataLayout, db_thread: DatabaseThread) -> JournalWriter:
    """The journal, resumed on the database thread that appends to it."""
    journal = JournalWriter(layout.journal)
    db_thread.call(journal.open)
    return journal


def run(
    settings: Settings,
    layout: DataLayout,
    *,
    persistence_factory: PersistenceFactory | None = None,
    durable: bool = True,
    journaled: bool = True,
) -> int:
    """Poll until SIGTERM/SIGINT; the exit status. ``journaled`` False (the benchmark's
    baseline only) runs without the update journal."""
    if settings.telegram_bot_token is None:
        log.error(
            "TELEGRAM_BOT_TOKEN is not set; the bot cannot start "
            "(get a token from @BotFather and set it in the environment or .env)"
        )
        return EXIT_NOT_CONFIGURED

    for name in (
        "telegram.ext",
        "telegram.ext.Updater",
        "telegram.ext.Application",
        "telegram.request.BaseRequest",
    ):
        logging.getLogger(name).addFilter(_TelegramLogFilter())
    db_thread = DatabaseThread()
    # DATABASE_URL: a PostgreSQL server, which is where a batch is durable: no update journal,
    # no replay (they are the SQLite file's safety net on this machine's disk).
    server = settings.database_server
    database = server or layout.database
    where = server.redacted if server is not None else str(layout.database)
    try:
        storage = db_thread.call(Storage.open, database)
    except Exception as error:
        if server is None:
            log.exception("cannot open the database %s", layout.database)
        else:
            log.error("cannot use the database %s: %s", server, why_not_opened(error))
        db_thread.shutdown()
        return EXIT_DATABASE
    application: Application | None = None
    journal: JournalWriter | None = None
    inbox = WebhookInbox() if settings.telegram_webhook_url is not None else None
    try:
        if durable and journaled and server is None:
            journal = open_journal(layout, db_thread)
            db_thread.call(storage.lean_on_journal)
            # What a restore left out, before the first update is fetched.
            asyncio.run(
                replay_at_start(
                    settings.telegram_bot_token.get_secret_value(),
                    layout.journal,
                    storage,
                    db_thread,
                    layout.replay_report,
                )
            )
        application = build_application(
            settings,
            layout,
            storage,
            db_thread,
            persistence_factory=persistence_factory,
            durable=durable,
            journal=journal,
            inbox=inbox,
        )
        if inbox is not None:
            serve_webhook(settings, where, application, inbox)
        else:
            log.info(
                "bot starting: database %s, long-poll timeout %ss",
                where,
                settings.bot_poll_timeout,
            )
            application.run_polling(
                timeout=settings.bot_poll_timeout,
                allowed_updates=Update.ALL_TYPES,
                stop_signals=lifeline.stop_signals(),
                bootstrap_retries=BOOTSTRAP_RETRIES,
            )
    except InvalidToken:
        # python-telegram-bot's own message quotes the token: never show it.
        log.error(
            "Telegram rejected TELEGRAM_BOT_TOKEN (revoked or mistyped?); the bot cannot start. "
            "Check the token with @BotFather."
        )
        return EXIT_NOT_CONFIGURED
    except Exception as error:
        # The formatter redacts secrets from the message and the traceback alike.
        log.error("the bot stopped on an error: %s", type(error).__name__, exc_info=error)
        return EXIT_FAILED
    finally:
        try:
            db_thread.call(storage.close)
            if journal is not None:
                db_thread.call(journal.close)
        finally:
            db_thread.shutdown()
    if application is not None and getattr(application.bot, "unauthorized", False):
        log.error(
            "Telegram refused TELEGRAM_BOT_TOKEN while polling (401 Unauthorized: revoked?); "
            "the bot stops. Check the token with @BotFather."
        )
        return EXIT_NOT_CONFIGURED
    processor = application.update_processor if application is not None else None
    if isinstance(processor, DurableUpdateProcessor) and processor.failed is not None:
        if isinstance(processor.failed, DatabaseReplaced):
            log.error("the bot stopped: %s; nothing after it was confirmed", processor.failed)
            return EXIT_DATABASE  # the watchdog checks, and recovers, before any relaunch
        log.error("the bot stopped: the database refused a commit")
        return EXIT_FAILED
    log.info("bot stopped")
    return EXIT_OK
