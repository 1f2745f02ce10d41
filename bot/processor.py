"""Handling updates: concurrently across chats, in order within each chat, committed in batches.

Each chat has a queue of its own: an update waits only for the earlier updates of its chat
(:meth:`DurableUpdateProcessor.process_update` takes its place in the chat's line as it is
fetched, before anything can reorder it). Updates of different chats run side by side, up to
``max_concurrent``.

All of them write into one database batch (SQLite has one writer; see
:meth:`Storage.begin_batch`). A batch commits when no update is left to start, or it is full or
old: new updates wait at the gate while the ones in flight finish, and then the batch — every
finished update's writes, persistence rows, outbox messages and update_ids — commits in one
transaction, after the journal was fsynced. A commit therefore never holds half an update.
That is cheap because handlers do not wait on the network: messages are staged in the outbox
(:meth:`stage`) and sent by :mod:`bot.delivery` once the batch committed, each chat in its own
lane; slow work goes to a lane too (``Handlers.in_background``).

Who is told an update is done: polling's :class:`~bot.durable.UpdateLedger` (the next
getUpdates confirms it) or webhook mode's inbox (the HTTP request is answered 200), both only
after the commit. In webhook mode (``claims``) an update is claimed in the transaction before it
is handled (:mod:`bot.claims`), so a copy handled by another instance at the same time is
skipped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Hashable, Sequence
from datetime import datetime
from typing import Any, Protocol

from telegram import Update
from telegram.ext import Application, BaseUpdateProcessor

from bot import crashpoints
from bot.claims import Claim, claim_update
from bot.clock import utc_now
from bot.delivery import HANDLING, METHODS, Delivery, Handling, OutboxLeases, Outgoing, Work
from bot.journaling import BatchJournal
from bot.persistence import SQLitePersistence
from bot.storage import DatabaseThread, Storage

log = logging.getLogger(__name__)

MAX_BATCH = 100
MAX_BATCH_AGE = 0.25
"""Seconds a batch may stay open while more updates are queued; an idle bot commits at once."""
MAX_CONCURRENT = 64
"""Updates in flight at once (each waits only for its own chat's earlier updates)."""


class Confirmations(Protocol):
    """Who learns that updates are done (committed), and holds their raw JSON meanwhile."""

    def finish(self, update_ids: Sequence[int]) -> None: ...

    def give_back(self, update_ids: Sequence[int]) -> None:
        """Not handled now (claimed elsewhere): Telegram must deliver them again."""

    def raw(self, update_id: int) -> dict[str, Any] | None: ...


def chat_key(update: object) -> Hashable:
    """Whose line an update stands in: its chat, else its sender, else one line for the rest."""
    if isinstance(update, Update):
        if update.effective_chat is not None:
            return ("chat", update.effective_chat.id)
        if update.effective_user is not None:
            return ("user", update.effective_user.id)
    return ("other",)


class DurableUpdateProcessor(BaseUpdateProcessor):
    """See the module docstring."""

    def __init__(
        self,
        storage: Storage,
        db_thread: DatabaseThread,
        ledger: Confirmations,
        persistence: SQLitePersistence | None = None,
        *,
        journal: BatchJournal | None = None,
        claims: bool = False,
        max_batch: int = MAX_BATCH,
        max_batch_age: float = MAX_BATCH_AGE,
        max_concurrent: int = MAX_CONCURRENT,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        super().__init__(max_concurrent_updates=max_concurrent)
        self.storage = storage
        self.db = db_thread
        self.ledger = ledger
        self.persistence = persistence
        self.journal = journal
        self.claims = claims
        self.max_batch = max_batch
        self.max_batch_age = max_batch_age
        self.clock = clock
        self.application: Application | None = None
        self.delivery: Delivery | None = None
        self.leases: OutboxLeases | None = None
        self.failed: BaseException | None = None
        self.committed = 0
        self.skipped = 0
        self._batch: list[int] = []
        self._batch_started = 0.0
        self._staged: list[Outgoing] = []
        self._sent_ids: list[int] = []
        self._clearing = False
        self._entered = 0
        """Updates taken from the queue and not finished (waiting for their chat, at the gate,
        in flight)."""
        self._commit_lock = asyncio.Lock()
        self._lines: dict[Hashable, asyncio.Future[None]] = {}
        self._in_flight = 0
        self.most_in_flight = 0
        """The most updates handled at once so far (said at the end of a run)."""
        self._quiet = asyncio.Event()
        self._quiet.set()
        self._gate = asyncio.Event()
        self._gate.set()

    def attach(self, application: Application) -> None:
        self.application = application
        self.delivery = Delivery(application.bot, on_sent=self._sent)

    async def _sent(self, outbox_ids: list[int]) -> None:
        """Delete the rows of sent messages; ids that arrive while a delete runs go together
        in the next one."""
        self._sent_ids.extend(outbox_ids)
        if self._clearing:
            return
        self._clearing = True
        try:
            while self._sent_ids:
                ids, self._sent_ids = self._sent_ids, []
                await self.db.run(self.storage.outbox_done, ids)
        finally:
            self._clearing = False

    async def initialize(self) -> None:
        pruned = await self.db.run(self.storage.prune_processed, self.clock())
        if pruned:
            log.debug("forgot %d update ids older than a week", pruned)
        if not self.storage.is_sqlite and self.delivery is not None:
            # A server shared by instances: send only what nobody holds (bot/delivery.py).
            self.leases = OutboxLeases(self.storage, self.db.run, self.delivery)
            await self.leases.start()
            return
        pending = await self.db.run(self.storage.outbox_pending, METHODS)
        if pending and self.delivery is not None:
            log.info("sending %d messages that were not sent before the last stop", len(pending))
            for outbox_id, chat_id, method, params in pending:
                self.delivery.send(Outgoing(chat_id, method, params, outbox_id))

    async def finish(self) -> None:
        """The application stopped taking updates: commit the last batch, then let the lanes
        send what they hold for a few seconds (the rest stays in the outbox)."""
        if self._batch or self.storage.batch_open:
            await self.commit()
        if self.delivery is not None:
            await self.delivery.drain()
        if self.leases is not None:
            await self.leases.stop()
        log.info(
            "handled %d updates this run, at most %d at once; %d messages sent",
            self.committed,
            self.most_in_flight,
            self.delivery.sent if self.delivery is not None else 0,
        )

    async def shutdown(self) -> None:
        if self._batch or self.storage.batch_open:
            await self.commit()

    # -- sending, for the handlers ------------------------------------------------------------

    async def send(self, item: Outgoing) -> None:
        """A message from a handler: staged in the outbox with its update, sent once the batch
        committed; from anywhere else (slow work in a lane), sent now."""
        handling = HANDLING.get()
        if handling is not None and handling.open and self.failed is None:
            self._staged.append(item)  # stored by the commit, in the batch's transaction
        elif self.delivery is not None:
            self.delivery.send(item)

    def run(self, chat_id: int, work: Work) -> None:
        assert self.delivery is not None
        self.delivery.run(chat_id, work)

    # -- handling -----------------------------------------------------------------------------

    async def process_update(self, update: object, coroutine: Any) -> None:
        """Take the update's place in its chat's line at once (python-telegram-bot starts the
        tasks in the order the updates were fetched), then wait for the earlier ones."""
        key = chat_key(update)
        earlier = self._lines.get(key)
        mine: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._lines[key] = mine
        self._entered += 1
        try:
            if earlier is not None:
                await asyncio.shield(earlier)
            await super().process_update(update, coroutine)
        finally:
            self._entered -= 1
            mine.set_result(None)
            if self._lines.get(key) is mine:
                del self._lines[key]

    async def do_process_update(self, update: object, coroutine: Coroutine[Any, Any, Any]) -> None:
        while not self._gate.is_set():
            await self._gate.wait()
        if self.failed is not None:
            coroutine.close()  # stopping: leave it to the next run (it is not confirmed)
            return
        self._in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self._in_flight)
        self._quiet.clear()
        try:
            handled = await self._handle(update, coroutine)
        finally:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._quiet.set()
        if (handled or self._batch) and self._should_commit():
            await self.commit(if_due=True)

    async def _handle(self, update: object, coroutine: Coroutine[Any, Any, Any]) -> bool:
        update_id = update.update_id if isinstance(update, Update) else None
        if not self._batch:
            self._batch_started = time.monotonic()
        if self.claims and update_id is not None:
            claim = await self.db.run(claim_update, self.storage, update_id, self.clock())
            if claim is not Claim.MINE:
                coroutine.close()
                if claim is Claim.BUSY:
                    log.warning("update %s is being handled elsewhere; asked again", update_id)
                    self.ledger.give_back([update_id])
                    return False
                self.skipped += 1
                log.info("update %s was handled already; not applied twice", update_id)
                self.ledger.finish([update_id])
                return self.storage.batch_open  # the open transaction still wants its commit
        elif update_id is not None and await self.db.run(self.storage.is_processed, update_id):
            coroutine.close()
            self.skipped += 1
            log.info("update %s was handled before a restart; not applied twice", update_id)
            self.ledger.finish([update_id])
            return False
        await self.db.run(self.storage.begin_batch)
        handling = Handling(update_id, self)
        token = HANDLING.set(handling)
        try:
            await coroutine  # handler errors are caught and reported by the application
        finally:
            handling.open = False
            HANDLING.reset(token)
        if update_id is not None:
            self._batch.append(update_id)
            if self.journal is not None and isinstance(update, Update) and handling.journaled:
                self.journal.add(update, self.ledger.raw(update_id))
        return True

    def _should_commit(self) -> bool:
        queue = self.application.update_queue if self.application is not None else None
        # The update asking is still counted in _entered; any other will join this batch if
        # it waits a moment (it is in flight, at the gate, or behind its chat's earlier ones).
        return (
            queue is None
            or (queue.empty() and self._entered <= 1)
            or len(self._batch) >= self.max_batch
            or time.monotonic() - self._batch_started >= self.max_batch_age
        )

    # -- committing ---------------------------------------------------------------------------

    async def commit(self, *, if_due: bool = False) -> None:
        """Close the gate, let the updates in flight finish, persist the changed data into the
        batch, record its update_ids, commit; then tell the ledger (the next getUpdates
        confirms them to Telegram) and hand the staged messages to their lanes. ``if_due``:
        only if the batch is still due once the lock is ours (updates finishing together all
        find it due; the first commits, the others would each commit a batch of one)."""
        async with self._commit_lock:
            if if_due and not (self._batch and self._should_commit()):
                return
            self._gate.clear()
            try:
                await self._quiet.wait()
                await self._commit_batch()
            finally:
                self._gate.set()

    async def _commit_batch(self) -> None:
        if not self._batch and not self.storage.batch_open:
            return
        if self.application is not None and self.application.persistence is not None:
            await self.application.update_persistence()
        ids, self._batch = self._batch, []
        staged, self._staged = self._staged, []
        try:
            staged = await self.db.run(self._commit_durably, ids, staged, self.clock())
        except Exception as error:
            self.failed = error
            if self.journal is not None:
                self.journal.discard()
            if self.persistence is not None:
                # Memory still holds what the rolled-back updates changed: nothing more may be
                # written (shutdown would write it, and their redelivery would apply it twice).
                self.persistence.fence(
                    f"the commit of updates {ids} failed; they will be handled again"
                )
            log.critical(
                "cannot commit handled updates %s to the database (%s: %s); stopping "
                "without confirming them to Telegram, they will be handled again",
                ids,
                type(error).__name__,
                error,
            )
            if self.application is not None and self.application.running:
                self.application.stop_running()
            return
        self.committed += len(ids)
        self.ledger.finish(ids)
        if self.delivery is not None:
            for item in staged:
                self.delivery.send(item)

    def _commit_durably(
        self, ids: list[int], staged: list[Outgoing], now: datetime
    ) -> list[Outgoing]:
        """On the database thread: the staged messages into the outbox, the journal (one fsync
        for the batch), then the database. A journal that cannot be written rolls the batch
        back: nothing is confirmed that the journal does not hold. The messages as stored."""
        stored = [
            Outgoing(
                item.chat_id,
                item.method,
                item.params,
                self.storage.outbox_add(item.chat_id, item.method, item.params, now),
            )
            for item in staged
        ]
        if self.journal is not None:
            try:
                self.journal.flush()
            except BaseException:
                self.storage.rollback_batch()
                raise
            crashpoints.reached("journal-written")
        self.storage.commit_batch(ids, now)
        crashpoints.reached("committed")
        return stored
