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

Nothing else writes these rows while the bot runs, so the ``refresh_*`` hooks have nothing to do.
"""

from __future__ import annotations

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

# python-telegram-bot's shapes of conversation and callback data (its own aliases are private).
ConversationKey = tuple[int | str, ...]
ConversationDict = MutableMapping[ConversationKey, object]
CDCData = tuple[list[tuple[str, float, dict[str, Any]]], dict[str, str]]


class SQLitePersistence(BasePersistence[dict[Any, Any], dict[Any, Any], dict[Any, Any]]):
    def __init__(
        self,
        storage: Storage,
        db_thread: DatabaseThread,
        *,
        store_data: PersistenceInput | None = None,
        update_interval: float = DEFAULT_UPDATE_INTERVAL,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        super().__init__(store_data=store_data, update_interval=update_interval)
        self.storage = storage
        self.db = db_thread
        self.clock = clock
        self._written: dict[RowId, str] = {}
        """The value text of every row as last written or read: unchanged rows are skipped."""
        self._reported: set[str] = set()
        self._erased: set[int] = set()
        """Users (and their private chats) erased while the bot runs."""

    # ------------------------------------------------------------------------------ helpers
    async def _load(self, kind: str, name: str | None = None) -> list[tuple[str, str, str]]:
        rows = await self.db.run(self.storage.load_persistence, kind, name)
        for row_name, key, value in rows:
            self._written[(kind, row_name, key)] = value
        return rows

    async def _write(self, changes: list[tuple[str, str, str, str | None]]) -> None:
        """Write the rows that differ from what was last written."""
        needed = [
            change
            for change in changes
            if self._written.get((change[0], change[1], change[2])) != change[3]
        ]
        if not needed:
            return
        await self.db.run(self.storage.write_persistence, needed, self.clock())
        for kind, name, key, value in needed:
            if value is None:
                self._written.pop((kind, name, key), None)
            else:
                self._written[(kind, name, key)] = value

    async def _load_mapping(self, kind: str) -> dict[Any, Any]:
        """The rows of one kind as the mapping python-telegram-bot keeps: decoded key → value."""
        return {codec.loads(key): codec.loads(value) for _, key, value in await self._load(kind)}

    async def _write_data(self, kind: str, owner_id: int, data: dict[Any, Any]) -> None:
        """The user_data or chat_data of one user or chat, as one row. Empty data of an erased
        user is not written: python-telegram-bot marks the user of an update again once its
        task ended, after the erasure was committed, and the row would be theirs."""
        if owner_id in self._erased:
            if not data:
                return
            self._erased.discard(owner_id)
        value = self._encode(data, f"{kind}[{owner_id!r}]")
        await self._write([(kind, "", codec.dumps(owner_id), value)])

    def _encode(self, value: Any, where: str) -> str:
        try:
            return codec.dumps(value, where)
        except codec.UnstorableValue as error:
            message = str(error)
            if message not in self._reported:  # once per distinct problem, not every second
                self._reported.add(message)
                log.error("persistence: not stored: %s", message)
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

    def invalidate(self) -> None:
        """Forget what was written (after a rolled-back transaction): rewrite on the next run."""
        self._written.clear()

    # ----------------------------------------------------------------------------- user data
    async def get_user_data(self) -> dict[int, dict[Any, Any]]:
        return await self._load_mapping(USER_DATA)

    async def update_user_data(self, user_id: int, data: dict[Any, Any]) -> None:
        await self._write_data(USER_DATA, user_id, data)

    async def drop_user_data(self, user_id: int) -> None:
        await self._write([(USER_DATA, "", codec.dumps(user_id), None)])

    async def refresh_user_data(self, user_id: int, user_data: dict[Any, Any]) -> None:
        """Nothing to do: no one else writes these rows while the bot runs."""

    # ----------------------------------------------------------------------------- chat data
    async def get_chat_data(self) -> dict[int, dict[Any, Any]]:
        return await self._load_mapping(CHAT_DATA)

    async def update_chat_data(self, chat_id: int, data: dict[Any, Any]) -> None:
        await self._write_data(CHAT_DATA, chat_id, data)

    async def drop_chat_data(self, chat_id: int) -> None:
        await self._write([(CHAT_DATA, "", codec.dumps(chat_id), None)])

    async def refresh_chat_data(self, chat_id: int, chat_data: dict[Any, Any]) -> None:
        """Nothing to do: no one else writes these rows while the bot runs."""

    # ------------------------------------------------------------------------------ bot data
    async def get_bot_data(self) -> dict[Any, Any]:
        return await self._load_mapping(BOT_DATA)

    async def update_bot_data(self, data: dict[Any, Any]) -> None:
        """One row per top-level key: storable keys are written even when another is not; the
        first unstorable one is raised afterwards."""
        changes: list[tuple[str, str, str, str | None]] = []
        failure: codec.UnstorableValue | None = None
        present: set[str] = set()
        for name, item in data.items():
            try:
                key = self._encode(name, "bot_data (a key)")
                value = self._encode(item, f"bot_data[{name!r}]")
            except codec.UnstorableValue as error:
                failure = failure or error
                # Keep the stored value of a key whose new value cannot be stored.
                with contextlib.suppress(codec.UnstorableValue):
                    present.add(codec.dumps(name))
                continue
            present.add(key)
            changes.append((BOT_DATA, "", key, value))
        for kind, name, key in list(self._written):
            if kind == BOT_DATA and key not in present:
                changes.append((BOT_DATA, name, key, None))
        await self._write(changes)
        if failure is not None:
            raise failure

    async def refresh_bot_data(self, bot_data: dict[Any, Any]) -> None:
        """Nothing to do: no one else writes these rows while the bot runs."""

    # ------------------------------------------------------------------------- callback data
    async def get_callback_data(self) -> CDCData | None:
        rows = await self._load(CALLBACK_DATA)
        if not rows:
            return None
        keyboards: list[tuple[str, float, dict[str, Any]]] = []
        queries: dict[str, str] = {}
        for name, key, value in rows:
            if name == _KEYBOARDS:
                access_time, buttons = codec.loads(value)
                keyboards.append((codec.loads(key), access_time, buttons))
            elif name == _QUERIES:
                queries[codec.loads(key)] = codec.loads(value)
        keyboards.sort(key=lambda keyboard: (keyboard[1], keyboard[0]))  # least recent first
        return keyboards, queries

    async def update_callback_data(self, data: CDCData) -> None:
        keyboards, queries = data
        changes: list[tuple[str, str, str, str | None]] = [
            (CALLBACK_DATA, _META, '"stored"', "true")
        ]
        present: set[RowId] = {(CALLBACK_DATA, _META, '"stored"')}
        for keyboard_id, access_time, buttons in keyboards:
            key = self._encode(keyboard_id, "callback_data (a keyboard id)")
            value = self._encode([access_time, buttons], f"callback_data[{keyboard_id!r}]")
            changes.append((CALLBACK_DATA, _KEYBOARDS, key, value))
            present.add((CALLBACK_DATA, _KEYBOARDS, key))
        for query_id, keyboard_id in queries.items():
            key = self._encode(query_id, "callback_data (a query id)")
            value = self._encode(keyboard_id, f"callback_data query {query_id!r}")
            changes.append((CALLBACK_DATA, _QUERIES, key, value))
            present.add((CALLBACK_DATA, _QUERIES, key))
        for row in list(self._written):
            if row[0] == CALLBACK_DATA and row not in present:
                changes.append((*row, None))
        await self._write(changes)

    # ------------------------------------------------------------------------- conversations
    async def get_conversations(self, name: str) -> ConversationDict:
        return {
            codec.loads(key): codec.loads(value)
            for _, key, value in await self._load(CONVERSATION, name)
        }

    async def update_conversation(
        self, name: str, key: ConversationKey, new_state: object | None
    ) -> None:
        encoded_key = self._encode(key, f"conversation {name!r} (a key)")
        value = (
            None
            if new_state is None
            else self._encode(new_state, f"conversation {name!r}[{key!r}]")
        )
        await self._write([(CONVERSATION, name, encoded_key, value)])

    # --------------------------------------------------------------------------------- flush
    async def flush(self) -> None:
        """Every ``update_*`` call has already written its rows (or joined the durable
        processor's batch, which that processor commits at shutdown): nothing is held here."""
        log.debug("persistence flushed (%d rows known)", len(self._written))
