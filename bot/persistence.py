"""``SQLitePersistence``: python-telegram-bot's persistence in the bot's own database.

One row per key in the ``persistence`` table — per user (user_data), per chat (chat_data), per
top-level bot_data key, per conversation key, per callback keyboard — so a write touches only
what changed; a row whose value has not changed since it was last written is not written again.
Values are stored by :mod:`bot.codec`: readable JSON that decodes to exactly what was stored
(integer keys stay integers, tuples stay tuples); a value it cannot store raises
:class:`~bot.codec.UnstorableValue` at write time, naming where it sits.

Writes go through :class:`~bot.storage.Storage` on the database thread. When the durable update
processor (:mod:`bot.durable`) has a batch open, they join that transaction and reach the disk
with the update's other effects; otherwise each call is its own short transaction. The
application calls :meth:`update_*` every ``update_interval`` seconds (1 s here, not the library's
60 s) and once more at shutdown; the durable processor also calls it before every commit.

What this object knows of the rows (to skip unchanged ones, and to know which rows a delete must
remove) it learns from the database, one scope at a time (all rows of a kind, or of one
conversation), before its first write there; :meth:`invalidate` (the database rolled back what
was written) makes it learn again, so no write, delete included, is ever skipped on a stale
belief. :meth:`fence` stops all writing instead: for when the application's memory holds changes
the database rolled back and must not be written (see its docstring).

A stored row that does not decode (malformed, an Enum class that no longer exists, a forged class
path) is *set aside*: logged once, not loaded, left in the database as it is until the bot writes
that key again; the other rows load, and the bot starts.

Nothing else writes these rows while the bot runs, so the ``refresh_*`` hooks have nothing to do.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, MutableMapping
from datetime import datetime
from typing import Any

from telegram.ext import BasePersistence, PersistenceInput

from bot import codec
from bot.clock import utc_now
from bot.storage import (
    BOT_DATA,
    CALLBACK_DATA,
    CHAT_DATA,
    CONVERSATION,
    USER_DATA,
    DatabaseThread,
    Storage,
    key_ids,
)

log = logging.getLogger(__name__)

DEFAULT_UPDATE_INTERVAL = 1.0
"""Seconds between the application's writes of changed data (python-telegram-bot's default: 60)."""

_KEYBOARDS = "keyboards"
_QUERIES = "queries"
_META = "meta"

RowId = tuple[str, str, str]
"""(kind, name, key) of one persistence row."""
Scope = tuple[str, str | None]
"""The rows learnt together: (kind, None) for a whole kind, (CONVERSATION, name) for one
conversation."""
Change = tuple[RowId, str | None]
"""A row and its new value text; None deletes it."""

# python-telegram-bot's shapes of conversation and callback data (its own aliases are private).
ConversationKey = tuple[int | str, ...]
ConversationDict = MutableMapping[ConversationKey, object]
CDCData = tuple[list[tuple[str, float, dict[str, Any]]], dict[str, str]]


def _scope(row: RowId) -> Scope:
    return (row[0], row[1]) if row[0] == CONVERSATION else (row[0], None)


def _checked(kind: str, name: str, key: Any, value: Any) -> tuple[Any, Any]:
    """A decoded row in the shape python-telegram-bot expects of its kind; ValueError if not."""
    if kind in (USER_DATA, CHAT_DATA) and (type(key) is not int or not isinstance(value, dict)):
        raise ValueError(f"{kind} must map an int id to a dict")
    if kind == CONVERSATION and type(key) is not tuple:
        raise ValueError("a conversation key must be a tuple")
    if (
        kind == CALLBACK_DATA
        and name == _KEYBOARDS
        and not (
            type(key) is str
            and isinstance(value, list)
            and len(value) == 2
            and type(value[0]) in (int, float)
            and isinstance(value[1], dict)
        )
    ):
        raise ValueError("a callback keyboard must be [access time, {button: data}]")
    if kind == CALLBACK_DATA and name == _QUERIES and not (type(key) is type(value) is str):
        raise ValueError("a callback query must map a query id to a keyboard id")
    return key, value


class SQLitePersistence(BasePersistence[dict[Any, Any], dict[Any, Any], dict[Any, Any]]):
    def __init__(
        self,
        storage: Storage,
        db_thread: DatabaseThread,
        *,
        store_data: PersistenceInput | None = None,
        update_interval: float = DEFAULT_UPDATE_INTERVAL,
        clock: Callable[[], datetime] = utc_now,
        shared: bool = False,
    ) -> None:
        super().__init__(store_data=store_data, update_interval=update_interval)
        self.storage = storage
        self.db = db_thread
        self.clock = clock
        self._written: dict[RowId, str] = {}
        """The rows in the database, with their value text, for every scope in ``_synced``."""
        self._synced: set[Scope] = set()
        self._set_aside: set[RowId] = set()
        self._reported: set[str] = set()
        self._erased: set[int] = set()
        """Users (and their private chats) erased while the bot runs."""
        self.shared = shared
        """Other instances write these rows too (webhook mode on a server, where each update
        commits on its own): what this instance read before an update may be stale, so each
        update starts from the rows as they are (:meth:`fresh_row`). Not with batches: there a
        batch's own changes are written only at its commit, and reading back would lose them."""
        self._fenced: str | None = None
        self.withheld = 0
        """Writes not made since :meth:`fence`."""
        self._lock: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None

    @property
    def set_aside(self) -> frozenset[RowId]:
        """Stored rows that did not decode when read: not loaded, left as they are."""
        return frozenset(self._set_aside)

    # ------------------------------------------------------------------------------ helpers
    def _guard(self) -> asyncio.Lock:
        """One reader or writer of the rows at a time (python-telegram-bot runs its update_*
        calls concurrently); a lock per event loop, as a lock belongs to one."""
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock[0] is not loop:
            self._lock = (loop, asyncio.Lock())
        return self._lock[1]

    def _report(self, message: str, level: int = logging.ERROR) -> None:
        if message not in self._reported:  # once per distinct problem, not every second
            self._reported.add(message)
            log.log(level, "persistence: %s", message)

    async def _learn(self, scope: Scope) -> list[tuple[str, Any, Any]]:
        """Read one scope's rows: the database's truth replaces what was believed of them.
        ``(name, key, value)`` decoded; rows that do not decode are set aside."""
        kind, name = scope
        rows = await self.db.run(self.storage.load_persistence, kind, name)
        for row in [row for row in self._written if _scope(row) == scope]:
            del self._written[row]
        decoded: list[tuple[str, Any, Any]] = []
        for row_name, key, value in rows:
            row = (kind, row_name, key)
            self._written[row] = value
            try:
                decoded.append(
                    (row_name, *_checked(kind, row_name, codec.loads(key), codec.loads(value)))
                )
            except ValueError as error:
                self._set_aside.add(row)
                self._report(
                    f"set aside {kind} row {row_name!r} {key[:80]!r} (not loaded, left in the "
                    f"database until written again): {error}"
                )
        self._synced.add(scope)
        return decoded

    async def _read(self, kind: str, name: str | None = None) -> list[tuple[str, Any, Any]]:
        async with self._guard():
            return await self._learn((kind, name))

    async def _write(
        self, scope: Scope, changes: list[Change], keep: set[RowId] | None = None
    ) -> None:
        """Write the changes that differ from the database. With ``keep``, ``changes`` are the
        whole scope: its other rows are deleted, except those in ``keep`` and the set-aside."""
        async with self._guard():
            if self._fenced is not None:
                self.withheld += 1
                self._report(f"not writing ({self._fenced})", logging.WARNING)
                return
            if scope not in self._synced:
                await self._learn(scope)
            if keep is not None:
                present = keep | {row for row, _ in changes} | self._set_aside
                changes = changes + [
                    (row, None)
                    for row in self._written
                    if _scope(row) == scope and row not in present
                ]
            needed = [(row, value) for row, value in changes if self._written.get(row) != value]
            if not needed:
                return
            await self.db.run(
                self.storage.write_persistence,
                [(*row, value) for row, value in needed],
                self.clock(),
            )
            for row, value in needed:
                self._set_aside.discard(row)
                if value is None:
                    self._written.pop(row, None)
                else:
                    self._written[row] = value

    async def _write_data(self, kind: str, owner_id: int, data: dict[Any, Any] | None) -> None:
        """The user_data or chat_data of one user or chat, as one row (None: no row). Empty
        data of an erased user is not written: python-telegram-bot marks the user of an update
        again once its task ended, after the erasure was committed, and the row would be
        theirs."""
        if owner_id in self._erased and data is not None:
            if not data:
                return
            self._erased.discard(owner_id)
        value = None if data is None else self._encode(data, f"{kind}[{owner_id!r}]")
        await self._write((kind, None), [((kind, "", codec.dumps(owner_id)), value)])

    def _encode(self, value: Any, where: str) -> str:
        try:
            return codec.dumps(value, where)
        except codec.UnstorableValue as error:
            self._report(f"not stored: {error}")
            raise

    def forget_user(self, user_id: int) -> None:
        """After :meth:`Storage.erase_user` removed the rows: forget them here too, so that the
        same value written again later is written, not skipped as unchanged."""
        key = codec.dumps(user_id)
        self._erased.add(user_id)
        for row in list(self._written):
            kind, _, row_key = row
            if (kind in (USER_DATA, CHAT_DATA) and row_key == key) or (
                kind == CONVERSATION and user_id in key_ids(row_key)
            ):
                del self._written[row]
                self._set_aside.discard(row)

    def invalidate(self) -> None:
        """The database rolled back what was written: believe nothing of it any more; every
        scope is read again before its next write, so none is skipped, deletes included."""
        self._written.clear()
        self._synced.clear()

    def fence(self, reason: str) -> None:
        """Write nothing from now on; each withheld write is counted and the first logged.

        For when the application's memory is ahead of the database by changes it rolled back
        and will redo: the durable processor's failed commit, whose updates Telegram delivers
        again after the restart. Writing that memory (at shutdown, say) would apply those
        updates twice."""
        self._fenced = reason
        self.invalidate()

    # ----------------------------------------------------------------------------- user data
    async def get_user_data(self) -> dict[int, dict[Any, Any]]:
        return {key: value for _, key, value in await self._read(USER_DATA)}

    async def update_user_data(self, user_id: int, data: dict[Any, Any]) -> None:
        await self._write_data(USER_DATA, user_id, data)

    async def drop_user_data(self, user_id: int) -> None:
        await self._write_data(USER_DATA, user_id, None)

    async def refresh_user_data(self, user_id: int, user_data: dict[Any, Any]) -> None:
        """On a shared server, the row as it is now (another instance may have handled this
        user's last update); on SQLite nothing to do: no one else writes these rows."""
        await self._refresh_data(USER_DATA, user_id, user_data)

    # ----------------------------------------------------------------------------- chat data
    async def get_chat_data(self) -> dict[int, dict[Any, Any]]:
        return {key: value for _, key, value in await self._read(CHAT_DATA)}

    async def update_chat_data(self, chat_id: int, data: dict[Any, Any]) -> None:
        await self._write_data(CHAT_DATA, chat_id, data)

    async def drop_chat_data(self, chat_id: int) -> None:
        await self._write_data(CHAT_DATA, chat_id, None)

    async def refresh_chat_data(self, chat_id: int, chat_data: dict[Any, Any]) -> None:
        """As :meth:`refresh_user_data`, for a chat."""
        await self._refresh_data(CHAT_DATA, chat_id, chat_data)

    async def fresh_row(self, kind: str, name: str, key: Any) -> tuple[bool, Any]:
        """``(found, value)`` of one row as the database holds it now; what this instance
        believes of the row is replaced by it. A row that does not decode is not found."""
        encoded = codec.dumps(key)
        row = (kind, name, encoded)
        async with self._guard():
            value = await self.db.run(self.storage.load_persistence_row, kind, name, encoded)
            if value is None:
                self._written.pop(row, None)
                return False, None
            self._written[row] = value
            try:
                return True, _checked(kind, name, key, codec.loads(value))[1]
            except ValueError as error:
                self._set_aside.add(row)
                self._report(f"set aside {kind} row {name!r} {encoded[:80]!r}: {error}")
                return False, None

    async def _refresh_data(self, kind: str, owner_id: int, data: dict[Any, Any]) -> None:
        if not self.shared:
            return
        found, value = await self.fresh_row(kind, "", owner_id)
        data.clear()
        if found:
            data.update(value)

    # ------------------------------------------------------------------------------ bot data
    async def get_bot_data(self) -> dict[Any, Any]:
        return {key: value for _, key, value in await self._read(BOT_DATA)}

    async def update_bot_data(self, data: dict[Any, Any]) -> None:
        """One row per top-level key: storable keys are written even when another is not; the
        first unstorable one is raised afterwards."""
        changes: list[Change] = []
        keep: set[RowId] = set()
        failure: codec.UnstorableValue | None = None
        for name, item in data.items():
            try:
                key = self._encode(name, "bot_data (a key)")
                value = self._encode(item, f"bot_data[{name!r}]")
            except codec.UnstorableValue as error:
                failure = failure or error
                # Keep the stored value of a key whose new value cannot be stored.
                with contextlib.suppress(codec.UnstorableValue):
                    keep.add((BOT_DATA, "", codec.dumps(name)))
                continue
            changes.append(((BOT_DATA, "", key), value))
        await self._write((BOT_DATA, None), changes, keep)
        if failure is not None:
            raise failure

    async def refresh_bot_data(self, bot_data: dict[Any, Any]) -> None:
        """Nothing to do: no one else writes these rows while the bot runs."""

    # ------------------------------------------------------------------------- callback data
    async def get_callback_data(self) -> CDCData | None:
        rows = await self._read(CALLBACK_DATA)
        if not rows:
            return None
        keyboards: list[tuple[str, float, dict[str, Any]]] = []
        queries: dict[str, str] = {}
        for name, key, value in rows:
            if name == _KEYBOARDS:
                access_time, buttons = value
                keyboards.append((key, access_time, buttons))
            elif name == _QUERIES:
                queries[key] = value
        keyboards.sort(key=lambda keyboard: (keyboard[1], keyboard[0]))  # least recent first
        return keyboards, queries

    async def update_callback_data(self, data: CDCData) -> None:
        keyboards, queries = data
        changes: list[Change] = [((CALLBACK_DATA, _META, '"stored"'), "true")]
        for keyboard_id, access_time, buttons in keyboards:
            key = self._encode(keyboard_id, "callback_data (a keyboard id)")
            value = self._encode([access_time, buttons], f"callback_data[{keyboard_id!r}]")
            changes.append(((CALLBACK_DATA, _KEYBOARDS, key), value))
        for query_id, keyboard_id in queries.items():
            key = self._encode(query_id, "callback_data (a query id)")
            value = self._encode(keyboard_id, f"callback_data query {query_id!r}")
            changes.append(((CALLBACK_DATA, _QUERIES, key), value))
        await self._write((CALLBACK_DATA, None), changes, set())

    # ------------------------------------------------------------------------- conversations
    async def get_conversations(self, name: str) -> ConversationDict:
        return {key: state for _, key, state in await self._read(CONVERSATION, name)}

    async def update_conversation(
        self, name: str, key: ConversationKey, new_state: object | None
    ) -> None:
        encoded_key = self._encode(key, f"conversation {name!r} (a key)")
        value = (
            None
            if new_state is None
            else self._encode(new_state, f"conversation {name!r}[{key!r}]")
        )
        await self._write((CONVERSATION, name), [((CONVERSATION, name, encoded_key), value)])

    # --------------------------------------------------------------------------------- flush
    async def flush(self) -> None:
        """Every ``update_*`` call has already written its rows (or joined the durable
        processor's batch, which that processor commits at shutdown): nothing is held here."""
        log.debug("persistence flushed (%d rows known)", len(self._written))
