"""Replay: the journal's updates a restored database lacks, handled again by the same handlers.

Run by the bot itself before it polls (:func:`replay_at_start`, which reports what it did in
``run/replay.json``: after a recovery the watchdog reads that report), so a recovery, an interrupted
one or a restore made by hand is completed before the first update; ``python -m bot replay`` runs
it alone for an operator. Replay
writes the database and the persistence exactly as the first handling did — with the time each
update first arrived — but sends nothing to Telegram (:class:`SilentRequest` answers every call
itself), calls nothing on the watchdog, and leaves administrators' commands out.
"""

from __future__ import annotations

import itertools
import json
import logging
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from telegram import Update
from telegram.ext import Application, ApplicationBuilder, ExtBot
from telegram.request import BaseRequest, RequestData

from bot import handlers
from bot.clock import replaying_at, utc_now
from bot.handlers.account import forget_in_memory
from bot.persistence import SQLitePersistence
from bot.replay_plan import plan_replay
from bot.storage import DatabaseThread, Storage
from bot.storage.batches import PROCESSED_UPDATES_KEPT
from conf.files import atomic_write
from conf.journal import UPDATE, JournalEntry, iter_updates, oldest_update_id, read_erasures

log = logging.getLogger(__name__)

COMMIT_EVERY = 500
"""Replayed updates per transaction."""
IDENTITY_FILE = "bot-identity.json"
"""The bot's own user as Telegram last described it (its username decides which commands
addressed ``/cmd@name`` in groups are its own): kept beside the journal for replay."""


@dataclass
class ReplayReport:
    replayed: int = 0
    erasures: int = 0
    already_processed: int = 0
    older_than_memory: int = 0
    erased_later: int = 0
    unreadable: int = 0
    silenced: dict[str, int] = field(default_factory=dict)
    """The Bot API calls the handlers made, answered here and never sent."""
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        text = f"replayed {self.replayed} updates from the journal"
        if self.erasures:
            text += f" and {self.erasures} erasures"
        if self.problems:
            text += f" ({len(self.problems)} problems: {'; '.join(self.problems)[:300]})"
        return text


class SilentRequest(BaseRequest):
    """A Bot API that is never reached: each call is counted and answered as Telegram would
    answer it, with just enough for the handlers to go on."""

    def __init__(self, identity: dict[str, Any]) -> None:
        self.identity = identity
        self.calls: Counter[str] = Counter()
        self._message_ids = itertools.count(1)

    @property
    def read_timeout(self) -> float | None:
        return None

    async def initialize(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = None,
        write_timeout: Any = None,
        connect_timeout: Any = None,
        pool_timeout: Any = None,
    ) -> tuple[int, bytes]:
        endpoint = url.rsplit("/", 1)[-1]
        parameters = request_data.parameters if request_data is not None else {}
        result: Any = True
        if endpoint == "getMe":
            result = self.identity
        elif endpoint == "getUpdates":
            result = []
        else:
            self.calls[endpoint] += 1
            lowered = endpoint.lower()
            inline = lowered.startswith("edit") and "inline_message_id" in parameters
            if lowered.startswith(("send", "copy", "forward", "edit", "stop")) and not inline:
                result = self._message(parameters)
        return 200, json.dumps({"ok": True, "result": result}).encode()

    def _message(self, parameters: dict[str, Any]) -> dict[str, Any]:
        chat_id = parameters.get("chat_id")
        return {
            "message_id": parameters.get("message_id") or next(self._message_ids),
            "date": int(time.time()),
            "chat": {"id": chat_id if isinstance(chat_id, int) else 0, "type": "private"},
            "from": self.identity,
            "text": parameters.get("text") if isinstance(parameters.get("text"), str) else "",
        }


def remember_identity(journal_folder: Path, bot_user: dict[str, Any]) -> None:
    journal_folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    atomic_write(journal_folder / IDENTITY_FILE, json.dumps(bot_user, sort_keys=True))


def identity_for(journal_folder: Path, token: str) -> dict[str, Any]:
    """The remembered identity, or the one the token implies (its id, no username)."""
    try:
        document = json.loads((journal_folder / IDENTITY_FILE).read_text())
        if (
            isinstance(document, dict)
            and isinstance(document.get("id"), int)
            and isinstance(document.get("username", ""), str)
        ):
            return {
                "id": document["id"],
                "is_bot": True,
                "first_name": str(document.get("first_name") or "bot")[:64],
                "username": document.get("username"),
            }
    except (OSError, ValueError):
        pass
    prefix = token.split(":", 1)[0]
    return {"id": int(prefix) if prefix.isdigit() else 0, "is_bot": True, "first_name": "bot"}


def _build(token: str, identity: dict[str, Any], storage: Storage, db: DatabaseThread) -> tuple:
    request = SilentRequest(identity)
    bot = ExtBot(token, request=request, get_updates_request=request)
    persistence = SQLitePersistence(storage, db)
    application = ApplicationBuilder().bot(bot).persistence(persistence).updater(None).build()
    handlers.register(application, storage, db, persistence=persistence, replaying=True)
    return application, request, persistence


REPORTED_PROBLEMS = 20
"""Problems written to the start-up report (the log has them all)."""


async def replay_at_start(
    token: str, journal_folder: Path, storage: Storage, db: DatabaseThread, report_path: Path
) -> ReplayReport:
    """The start-up replay, its report (or its failure) written atomically to ``report_path``
    before the bot polls; a failure is raised again after it is written."""
    try:
        report = await replay_journal(token, journal_folder, storage, db)
    except Exception as error:
        detail = f"{type(error).__name__}: {error}".replace(token, "[token]")
        write_report(report_path, {"error": detail[:300]})
        raise
    write_report(report_path, report.as_dict())
    return report


def write_report(path: Path, document: dict[str, Any]) -> None:
    """Never raises: without its report the watchdog says the bot did not report."""
    if isinstance(document.get("problems"), list):
        document = {**document, "problems": document["problems"][:REPORTED_PROBLEMS]}
    try:
        atomic_write(path, json.dumps(document, sort_keys=True) + "\n")
    except OSError as error:
        log.warning("cannot write the replay report %s: %s", path, error)


async def replay_journal(
    token: str, journal_folder: Path, storage: Storage, db: DatabaseThread
) -> ReplayReport:
    """Apply what the journal holds and the database lacks; the report of what was done."""
    started = time.monotonic()
    report = ReplayReport()
    erasures = read_erasures(journal_folder, report.problems)
    oldest = oldest_update_id(journal_folder)
    # Only what the journal could hold: a week of update_ids is not read for an hour of journal.
    since = oldest if oldest is not None else 1 << 62
    processed, newest = await db.run(storage.processed_memory, since)
    for erasure in erasures:
        if erasure.update_id < since and await db.run(storage.is_processed, erasure.update_id):
            processed.add(erasure.update_id)
    plan = plan_replay(
        iter_updates(journal_folder, report.problems),
        erasures,
        processed,
        newest.timestamp() if newest is not None else None,
        PROCESSED_UPDATES_KEPT.total_seconds(),
    )
    report.already_processed = plan.already_processed
    report.older_than_memory = plan.older_than_memory
    report.erased_later = plan.erased_later
    if plan.actions:
        application, request, persistence = _build(
            token, identity_for(journal_folder, token), storage, db
        )
        await application.initialize()
        try:
            await _apply(plan.actions, application, persistence, storage, db, report)
        finally:
            await application.shutdown()
        report.silenced = dict(request.calls)
    report.seconds = round(time.monotonic() - started, 3)
    if plan.actions or report.problems:
        log.warning("%s in %.2f s", report.summary(), report.seconds)
    return report


async def _apply(
    actions: list[JournalEntry],
    application: Application,
    persistence: SQLitePersistence,
    storage: Storage,
    db: DatabaseThread,
    report: ReplayReport,
) -> None:
    done: list[int] = []
    await db.run(storage.begin_batch)
    try:
        for action in actions:
            with replaying_at(datetime.fromtimestamp(action.at, UTC)):
                if action.kind == UPDATE:
                    if not await _handle(action, application, report):
                        continue
                    report.replayed += 1
                else:
                    assert action.user_id is not None
                    await db.run(storage.erase_user, action.user_id)
                    forget_in_memory(application, persistence, action.user_id)
                    report.erasures += 1
            done.append(action.update_id)
            if len(done) >= COMMIT_EVERY:
                await _commit(application, storage, db, done)
                done = []
                await db.run(storage.begin_batch)
        await _commit(application, storage, db, done)
    except BaseException:
        await db.run(storage.rollback_batch)
        raise


async def _handle(action: JournalEntry, application: Application, report: ReplayReport) -> bool:
    try:
        update = Update.de_json(dict(action.update or {}), application.bot)
    except Exception as error:
        report.unreadable += 1
        report.problems.append(f"update {action.update_id} cannot be read ({error})"[:200])
        return False
    # Handler errors are reported by the application's error handler, as at first handling.
    await application.process_update(update)
    return True


async def _commit(
    application: Application, storage: Storage, db: DatabaseThread, ids: list[int]
) -> None:
    await application.update_persistence()
    await db.run(storage.commit_batch, ids, utc_now())
