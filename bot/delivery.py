"""Delivery: what the bot sends, sent per chat, one lane each, so that no chat waits for another.

A message for a user is decided while its update is handled and written to the outbox in the
update's own transaction (:mod:`bot.storage.outbox`); once that commits, the message joins its
chat's lane here. A lane sends its chat's messages in order, and when Telegram answers 429 or
the network fails it waits and tries again — only that lane waits. A sent message leaves the
outbox; one still there after a crash is sent at the next start (a reply may arrive twice, as
before, and is never lost once its update was confirmed). On a server shared by instances
(:class:`OutboxLeases`) the rows are leased: a starting instance sends only those whose sender's
lease expired, and no live sender's row is sent by another.

Slow work for a chat (an export, a watchdog call) runs in the chat's lane too
(:meth:`Delivery.run`), after what the lane already holds, outside the handling of updates.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import os
import secrets
import socket
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from telegram import Bot, InlineKeyboardMarkup
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError

from bot.retry_after import ONE_ATTEMPT, retry_after_seconds

log = logging.getLogger(__name__)

SEND_MESSAGE = "sendMessage"
EDIT_MESSAGE_TEXT = "editMessageText"
ANSWER_CALLBACK_QUERY = "answerCallbackQuery"
METHODS = (SEND_MESSAGE, EDIT_MESSAGE_TEXT, ANSWER_CALLBACK_QUERY)

ATTEMPTS = 8
"""Tries per message over network errors and 429s before it is given up (said in the log)."""
FIRST_WAIT = 0.5
LONGEST_WAIT = 60.0
DRAIN_SECONDS = 5.0
"""At shutdown, how long the lanes may go on sending what they hold; the rest stays in the
outbox for the next start."""

Work = Callable[[], Awaitable[None]]
Sent = Callable[[list[int]], Awaitable[None]]
PendingRow = tuple[int, int, str, dict[str, Any]]


class LeaseStorage(Protocol):
    outbox_owner: str | None

    def outbox_renew(self) -> int: ...

    def outbox_take(self, methods: tuple[str, ...]) -> list[PendingRow]: ...

    def outbox_release(self) -> int: ...


class RunOnDatabase(Protocol):
    async def __call__(self, fn: Callable[..., Any], /, *args: Any) -> Any: ...


@dataclass(frozen=True)
class Outgoing:
    """One Bot API call to make: ``method`` is one of :data:`METHODS`, ``params`` its JSON
    parameters (``reply_markup`` as a dict). ``outbox_id`` is its row while it is stored."""

    chat_id: int
    method: str
    params: dict[str, Any]
    outbox_id: int | None = None


class Sender(Protocol):
    """Where handlers' messages and slow work go while updates are handled durably."""

    async def send(self, item: Outgoing) -> None: ...

    def run(self, chat_id: int, work: Work) -> None: ...


@dataclass
class Handling:
    """The update a handler is working for, and who takes its messages; ``open`` until the
    handler returned (a task that outlives it, a non-blocking handler, is not in its batch)."""

    update_id: int | None
    sender: Sender
    open: bool = True
    journaled: bool = True
    """False for an update refused before any effect (see :func:`leave_out_of_journal`)."""


HANDLING: contextvars.ContextVar[Handling | None] = contextvars.ContextVar(
    "erixcast_handling", default=None
)
"""Set by the update processor around each handler; unset in replay and in lanes (a fresh
context), where messages go straight to the Bot API."""


def current_sender() -> Sender | None:
    handling = HANDLING.get()
    return handling.sender if handling is not None else None


def leave_out_of_journal() -> None:
    """The update being handled is refused before it has any effect (the rate limit): the
    journal does not keep it, so no replay after a restore gives it the effects it was refused.
    It is still recorded as processed."""
    handling = HANDLING.get()
    if handling is not None:
        handling.journaled = False


@dataclass
class _Lane:
    items: deque[Outgoing | Work] = field(default_factory=deque)
    task: asyncio.Task[None] | None = None


def wait_before_attempt(attempt: int) -> float:
    """Seconds before retry ``attempt`` (1, 2, …) after a network error: doubling, capped."""
    return min(LONGEST_WAIT, FIRST_WAIT * (2 ** max(0, attempt - 1)))


class Delivery:
    """The lanes. ``on_sent`` is told the outbox ids of messages that left (or were given
    up), to delete their rows; ``sleep`` is injectable for tests."""

    def __init__(
        self,
        bot: Bot,
        *,
        on_sent: Sent | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        attempts: int = ATTEMPTS,
    ) -> None:
        self.bot = bot
        self.on_sent = on_sent
        self.sleep = sleep
        self.attempts = attempts
        self.sent = 0
        self.given_up = 0
        self.may_send: Callable[[], bool] = lambda: True
        """Checked before each attempt of a stored message: False while this instance's
        outbox leases may have lapsed (another instance may be sending it)."""
        self.queued: set[int] = set()
        """Outbox ids in a lane here, waiting or being sent."""
        self._lanes: dict[int, _Lane] = {}
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def pending(self) -> int:
        return sum(len(lane.items) + (lane.task is not None) for lane in self._lanes.values())

    def send(self, item: Outgoing) -> None:
        """Queue ``item`` in its chat's lane; a stored row already in a lane here is not
        queued twice (an outbox id names one message for the whole run: ``outbox_add``)."""
        if item.outbox_id is not None:
            if item.outbox_id in self.queued:
                return
            self.queued.add(item.outbox_id)
        self._enqueue(item.chat_id, item)

    def run(self, chat_id: int, work: Work) -> None:
        """Run ``work`` in the chat's lane, after what the lane already holds."""
        self._enqueue(chat_id, work)

    def _enqueue(self, chat_id: int, item: Outgoing | Work) -> None:
        lane = self._lanes.setdefault(chat_id, _Lane())
        lane.items.append(item)
        self._idle.clear()
        if lane.task is None:
            # A fresh context: the lane must not carry the update-handling context of the
            # handler that happened to open it.
            lane.task = asyncio.get_running_loop().create_task(
                self._drain(chat_id, lane), context=contextvars.Context()
            )

    async def _drain(self, chat_id: int, lane: _Lane) -> None:
        try:
            while lane.items:
                item = lane.items[0]
                if isinstance(item, Outgoing):
                    try:
                        await self._deliver(item)
                    finally:
                        self.queued.discard(item.outbox_id or 0)
                else:
                    await self._work(chat_id, item)
                lane.items.popleft()
        finally:
            lane.task = None
            if not lane.items:
                self._lanes.pop(chat_id, None)
            if not self._lanes:
                self._idle.set()

    async def _work(self, chat_id: int, work: Work) -> None:
        try:
            await work()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("background work for chat %s failed", chat_id)

    async def _deliver(self, item: Outgoing) -> None:
        attempt = 0
        while True:
            attempt += 1
            if item.outbox_id is not None and not self.may_send():
                log.warning(
                    "not sending outbox row %s: this instance's lease may have lapsed (the "
                    "instance that holds it now sends it)",
                    item.outbox_id,
                )
                return
            try:
                await self._call(item)
                self.sent += 1
                break
            except RetryAfter as error:
                wait = retry_after_seconds(error)
                problem = f"Telegram asks to wait {wait:.0f} s (429)"
            except (BadRequest, Forbidden) as error:
                # The chat is gone, the bot blocked, the message not editable: final.
                log.warning(
                    "not delivered to chat %s (%s): %s", item.chat_id, item.method, error.message
                )
                self.given_up += 1
                break
            except NetworkError as error:
                wait = wait_before_attempt(attempt)
                problem = f"{type(error).__name__}: {error.message}"
            except TelegramError as error:
                log.warning(
                    "not delivered to chat %s (%s): %s", item.chat_id, item.method, error.message
                )
                self.given_up += 1
                break
            if attempt >= self.attempts:
                log.error(
                    "giving up a %s to chat %s after %d attempts (%s)",
                    item.method,
                    item.chat_id,
                    attempt,
                    problem,
                )
                self.given_up += 1
                break
            log.info("chat %s: %s; trying again in %.1f s", item.chat_id, problem, wait)
            await self.sleep(min(wait, LONGEST_WAIT))
        if item.outbox_id is not None and self.on_sent is not None:
            try:
                await self.on_sent([item.outbox_id])
            except Exception as error:  # stays in the outbox: sent again at the next start
                log.warning("cannot clear outbox row %s: %s", item.outbox_id, error)

    async def _call(self, item: Outgoing) -> None:
        params = dict(item.params)
        markup = params.pop("reply_markup", None)
        if markup is not None:
            params["reply_markup"] = InlineKeyboardMarkup.de_json(markup, self.bot)
        limited = getattr(self.bot, "rate_limiter", None) is not None
        once = {"rate_limit_args": ONE_ATTEMPT} if limited else {}
        if item.method == SEND_MESSAGE:
            await self.bot.send_message(**params, **once)
        elif item.method == EDIT_MESSAGE_TEXT:
            await self.bot.edit_message_text(**params, **once)
        elif item.method == ANSWER_CALLBACK_QUERY:
            await self.bot.answer_callback_query(**params, **once)
        else:  # only a damaged outbox row names another method
            raise BadRequest(f"unknown method {item.method[:40]!r}")

    async def drain(self, timeout: float = DRAIN_SECONDS) -> bool:
        """Wait until every lane is empty, at most ``timeout`` seconds; then cancel what is
        left (it stays in the outbox). True when everything was delivered."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout)
        done = self._idle.is_set()
        for lane in list(self._lanes.values()):
            if lane.task is not None:
                lane.task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await lane.task
        self._lanes.clear()
        self.queued.clear()
        self._idle.set()
        return done


class OutboxLeases:
    """On a server shared by instances: this instance's claims on the outbox rows it sends
    (:mod:`bot.storage.outbox`). Every ``every`` seconds it renews its leases and sweeps up the
    rows whose lease expired (an instance killed, or stopped with messages unsent), which it
    then sends; at start the sweep replaces "send every row found". A lease that may have
    lapsed (renewal failing for longer than the lease) stops this instance's sends of stored
    messages until it is renewed: by then another instance may hold them."""

    def __init__(
        self,
        storage: LeaseStorage,
        run: RunOnDatabase,
        delivery: Delivery,
        methods: tuple[str, ...] = METHODS,
        *,
        lease: float | None = None,
        every: float | None = None,
    ) -> None:
        from bot.storage.outbox import LEASE_SECONDS

        self.storage = storage
        self.run = run
        self.delivery = delivery
        self.methods = methods
        self.lease = lease if lease is not None else LEASE_SECONDS
        self.every = every if every is not None else self.lease / 4
        self.name = f"{socket.gethostname()} pid {os.getpid()} {secrets.token_hex(4)}"
        self.margin = min(2.0, self.lease / 4)
        self._valid_until = 0.0
        self._task: asyncio.Task[None] | None = None

    def holds(self) -> bool:
        return time.monotonic() < self._valid_until

    async def start(self) -> None:
        """Claim the rows written from now on, and take (and send) the expired ones."""
        self.storage.outbox_owner = self.name
        self.delivery.may_send = self.holds
        self._valid_until = time.monotonic() + self.lease - self.margin
        await self.sweep(at_start=True)
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def sweep(self, at_start: bool = False) -> None:
        started = time.monotonic()
        await self.run(self.storage.outbox_renew)
        self._valid_until = started + self.lease - self.margin
        taken = await self.run(self.storage.outbox_take, self.methods)
        fresh = [row for row in taken if row[0] not in self.delivery.queued]
        if fresh:
            log.info(
                "sending %d stored messages %s",
                len(fresh),
                "left unsent before this start" if at_start else "whose sender's lease expired",
            )
        for outbox_id, chat_id, method, params in fresh:
            self.delivery.send(Outgoing(chat_id, method, params, outbox_id))

    async def _loop(self) -> None:
        failing = False
        while True:
            await asyncio.sleep(self.every)
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                if not failing:
                    log.warning("cannot renew the outbox leases: %s", error)
                failing = True
            else:
                failing = False

    async def stop(self) -> None:
        """A clean stop: the loop ends and this instance's leases are given up."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        try:
            await self.run(self.storage.outbox_release)
        except Exception as error:  # they expire by themselves
            log.warning("cannot release the outbox leases: %s", error)
