"""Exactly-once effects over Telegram's at-least-once delivery.

Telegram forgets an update once a ``getUpdates`` call asks for a higher ``offset``, and
python-telegram-bot asks for it as soon as the update is *fetched*, long before its handler has
finished, let alone written anything: a ``kill -9`` then loses that update's effects for good.
Three pieces close the gap:

- :class:`UpdateLedger` knows which fetched updates are not yet durable. :class:`DurableBot`
  (an ``ExtBot``) asks ``getUpdates`` for an offset no higher than the oldest of them, so Telegram
  keeps them until they are committed — after a kill they are delivered again — and drops the
  copies it sends back meanwhile.
- :class:`bot.processor.DurableUpdateProcessor` handles updates inside a database batch
  (:meth:`Storage.begin_batch`): the handlers' writes, the persistence rows of the data they
  changed, the messages they decided to send and the update_ids all commit in one transaction.
  An update whose id is already recorded is skipped, so a redelivered update changes nothing
  twice.
- The journal (:mod:`bot.journaling`) receives each batch's raw updates, fsynced before the
  batch commits, so no update is confirmed that a restore could not replay.

Messages are sent after their update commits (:mod:`bot.delivery`) and may arrive twice (sent,
then killed before the outbox row was deleted); stored state never changes twice and is never
lost once Telegram was told the update is done.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from telegram import Update
from telegram.error import InvalidToken, NetworkError
from telegram.ext import ExtBot
from telegram.request import BaseRequest, HTTPXRequest

log = logging.getLogger(__name__)

RECENT_KEPT = 4096

JSONDict = dict[str, Any]
DEFAULT_TIMEOUT = BaseRequest.DEFAULT_NONE
"""python-telegram-bot's marker for a timeout not given: the request's own timeout applies."""
Timeout = float | None | object
"""Seconds, None (wait forever) or :data:`DEFAULT_TIMEOUT`."""


class UpdateLedger:
    """Fetched updates that are not durable yet, and the ones finished lately (to drop copies)."""

    def __init__(self, recent: int = RECENT_KEPT) -> None:
        self._unfinished: set[int] = set()
        self._raw: dict[int, JSONDict] = {}
        """The unfinished updates as Telegram sent them: what the journal keeps."""
        self._recent: deque[int] = deque(maxlen=recent)
        self._recent_set: set[int] = set()
        self._progress: asyncio.Event | None = None

    @property
    def unfinished(self) -> frozenset[int]:
        return frozenset(self._unfinished)

    def hold(self, offset: int | None) -> int | None:
        """The offset to ask for: never past an unfinished update (0/None asks from the oldest
        unconfirmed one already)."""
        if not offset or not self._unfinished:
            return offset
        return min(offset, min(self._unfinished))

    def known(self, item: Any) -> bool:
        """A raw update (a dict) already in hand or finished lately."""
        update_id = item.get("update_id") if isinstance(item, dict) else None
        return update_id in self._unfinished or update_id in self._recent_set

    def admit(
        self, updates: Sequence[Update], raw: dict[int, JSONDict] | None = None
    ) -> list[Update]:
        """The updates not seen before; they become unfinished (with their raw JSON)."""
        fresh = []
        for update in updates:
            update_id = update.update_id
            if update_id in self._unfinished or update_id in self._recent_set:
                continue
            self._unfinished.add(update_id)
            if raw is not None and update_id in raw:
                self._raw[update_id] = raw[update_id]
            fresh.append(update)
        return fresh

    def raw(self, update_id: int) -> JSONDict | None:
        return self._raw.get(update_id)

    def progress_marker(self) -> asyncio.Event:
        """Take before asking Telegram; :meth:`wait_for_progress` with it returns at once when
        something finished meanwhile (no lost wake-up)."""
        if self._progress is None:
            self._progress = asyncio.Event()
        return self._progress

    def finish(self, update_ids: Sequence[int]) -> None:
        for update_id in update_ids:
            self._raw.pop(update_id, None)
            if update_id in self._unfinished:
                self._unfinished.discard(update_id)
            if update_id not in self._recent_set:
                if len(self._recent) == self._recent.maxlen:
                    self._recent_set.discard(self._recent[0])
                self._recent.append(update_id)
                self._recent_set.add(update_id)
        if self._progress is not None:
            self._progress.set()
            self._progress = None

    def give_back(self, update_ids: Sequence[int]) -> None:
        """Left unfinished: fetched again (after a restart at the latest)."""

    async def wait_for_progress(self, marker: asyncio.Event, timeout: float) -> None:
        """Until some update finished since ``marker`` was taken, or ``timeout`` seconds."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(marker.wait(), timeout)


class DurableBot(ExtBot):
    """An ExtBot whose ``getUpdates`` respects the ledger, skips updates it cannot read instead
    of stopping the polling loop, and notes a refused token (401) so the bot can exit 78."""

    __slots__ = ("_ledger", "_on_unauthorized", "_polling_request", "_unauthorized")

    def __init__(
        self,
        *args: Any,
        ledger: UpdateLedger | None = None,
        on_unauthorized: Callable[[], None] | None = None,
        get_updates_request: BaseRequest | None = None,
        **kwargs: Any,
    ) -> None:
        # Bot's own default for the getUpdates request, made here so that its timeout is known.
        polling_request = get_updates_request or HTTPXRequest(connection_pool_size=1)
        super().__init__(*args, get_updates_request=polling_request, **kwargs)
        # A Bot is frozen after __init__ except for attributes whose names start with "_".
        self._polling_request = polling_request
        self._ledger = ledger
        self._unauthorized = False
        self._on_unauthorized = on_unauthorized

    @property
    def unauthorized(self) -> bool:
        """Telegram refused the token while polling (401)."""
        return self._unauthorized

    def set_unauthorized_callback(self, callback: Callable[[], None]) -> None:
        self._on_unauthorized = callback

    async def initialize(self) -> None:
        try:
            await super().initialize()
        except InvalidToken:
            raise
        except NetworkError as error:  # retried with backoff by run_polling(bootstrap_retries)
            log.warning("cannot reach the Telegram Bot API yet (%s); retrying", error)
            raise

    async def get_updates(  # type: ignore[override]
        self,
        offset: int | None = None,
        limit: int | None = None,
        timeout: int | dt.timedelta | None = None,
        allowed_updates: Sequence[str] | None = None,
        *,
        read_timeout: Timeout = DEFAULT_TIMEOUT,
        write_timeout: Timeout = DEFAULT_TIMEOUT,
        connect_timeout: Timeout = DEFAULT_TIMEOUT,
        pool_timeout: Timeout = DEFAULT_TIMEOUT,
        api_kwargs: JSONDict | None = None,
    ) -> tuple[Update, ...]:
        marker = None
        if self._ledger is not None:
            offset = self._ledger.hold(offset)
            marker = self._ledger.progress_marker()
        data: JSONDict = {
            "timeout": timeout,
            "offset": offset,
            "limit": limit,
            "allowed_updates": allowed_updates,
        }
        # As Bot.get_updates: the long-poll timeout is added to the read timeout.
        if read_timeout is DEFAULT_TIMEOUT:
            base_read = self._polling_request.read_timeout or 0
        else:
            base_read = read_timeout or 0
        poll = timeout.total_seconds() if isinstance(timeout, dt.timedelta) else (timeout or 0)
        try:
            result = await self._post_get_updates(
                data,
                read_timeout=base_read + poll,
                write_timeout=write_timeout,
                connect_timeout=connect_timeout,
                pool_timeout=pool_timeout,
                api_kwargs=api_kwargs,
            )
        except InvalidToken:
            # Not raised: that would end python-telegram-bot's polling task with an exception
            # that later aborts the orderly shutdown (no final commit). Stop the application
            # instead; run() then exits 78.
            if self._unauthorized:
                return ()
            self._unauthorized = True
            log.error("Telegram answered getUpdates with 401 Unauthorized: stopping")
            if self._on_unauthorized is not None:
                self._on_unauthorized()
            await asyncio.sleep(1.0)  # the loop stops meanwhile; no busy polling
            return ()
        items = list(result or ())
        copies = 0
        if self._ledger is not None:
            # Drop the copies of updates still in hand before parsing them (parsing is the
            # expensive part of a poll).
            fresh_items = [item for item in items if not self._ledger.known(item)]
            copies = len(items) - len(fresh_items)
            items = fresh_items
        updates = []
        raw: dict[int, JSONDict] = {}
        for item in items:
            try:
                update = Update.de_json(item, self)
            except Exception as error:
                update_id = item.get("update_id") if isinstance(item, dict) else None
                log.error(
                    "skipping update %s: it cannot be read (%s: %s)",
                    update_id,
                    type(error).__name__,
                    error,
                )
                continue
            self.insert_callback_data(update)
            updates.append(update)
            raw[update.update_id] = item
        if self._ledger is None or marker is None:
            return tuple(updates)
        fresh = self._ledger.admit(updates, raw)
        if copies and not fresh:
            # Only copies of updates still being handled: wait for progress, not a busy loop.
            await self._ledger.wait_for_progress(marker, max(0.5, poll))
        return tuple(fresh)

    async def _post_get_updates(self, data: JSONDict, **request_options: Any) -> Any:
        """The raw answer to getUpdates, not parsed yet.

        No public method gives it: Bot.get_updates parses every update and raises on the first
        it cannot read, and do_api_request warns on every call for an endpoint the Bot has a
        method for. Bot._post, which get_updates itself uses, is the one way; only here."""
        return await self._post("getUpdates", data, **request_options)
