"""The bot's database, through ``dataset``: :class:`Storage` and what comes with it.

Rules (see FIELD-NOTES): the whole schema is created up front at start-up from conf/schema.sql
(dataset's implicit column creation is not safe under concurrency), every write runs inside
``with db:`` (a write outside a transaction is never committed), and all database work happens on
one thread (:class:`DatabaseThread`).

What differs between SQLite (the file at DATABASE_PATH) and PostgreSQL (DATABASE_URL) sits behind
one seam, :mod:`bot.storage.seam`: connection settings (:func:`connect`), the schema file
(conf/schema.sql or conf/schema_pg.sql), full-text search (FTS5 or tsvector), the journal's
PRAGMAs. Everything else is SQL that runs on both.

Transactions. A method opens its own short transaction, unless a *batch* is open
(:meth:`Storage.begin_batch`): then it joins it, and nothing is committed before
:meth:`Storage.commit_batch`, which also records the update_ids the batch handled. That is how an
update's effects, its persistence rows and its update_id reach the disk together or not at all.
"""

from __future__ import annotations

from typing import Any

from bot.storage.base import DatabaseReplaced
from bot.storage.batches import PROCESSED_UPDATES_KEPT
from bot.storage.history import USER_FIELDS, IncomingMessage, UserRecord
from bot.storage.notes import NOTE_MAX_CHARS, Note
from bot.storage.persistence_rows import (
    BOT_DATA,
    CALLBACK_DATA,
    CHAT_DATA,
    CONVERSATION,
    USER_DATA,
    key_ids,
)
from bot.storage.schema import reflected_metadata
from bot.storage.seam import (
    SQLITE_PRAGMAS,
    PostgresSeam,
    SQLiteSeam,
    SQLiteSearch,
    connect,
    seam_for,
    sqlite_url,
    why_not_opened,
)
from bot.storage.search import SEARCH_MAX_TERM_CHARS, SEARCH_MAX_TERMS, SearchHit, search_terms
from bot.storage.store import Storage
from bot.storage.thread import DatabaseThread
from bot.storage.values import clean_text, timestamp

__all__ = [
    "BOT_DATA",
    "CALLBACK_DATA",
    "CHAT_DATA",
    "CONVERSATION",
    "NOTE_MAX_CHARS",
    "PROCESSED_UPDATES_KEPT",
    "SEARCH_MAX_TERMS",
    "SEARCH_MAX_TERM_CHARS",
    "SQLITE_PRAGMAS",
    "USER_DATA",
    "USER_FIELDS",
    "DatabaseReplaced",
    "DatabaseThread",
    "IncomingMessage",
    "Note",
    "PostgresSeam",
    "SQLiteSeam",
    "SQLiteSearch",
    "SearchHit",
    "Storage",
    "UserRecord",
    "clean_text",
    "connect",
    "key_ids",
    "seam_for",
    "search_terms",
    "sqlite_url",
    "timestamp",
    "why_not_opened",
]

_REFLECTED_TABLES = {
    "chats_table": "chats",
    "messages_table": "messages",
    "notes_table": "notes",
    "persistence_table": "persistence",
    "processed_updates_table": "processed_updates",
}


def __getattr__(name: str) -> Any:
    """``metadata`` and the ``*_table`` objects that bot.storage used to define: reflected from
    conf/schema.sql on first use, so the schema stays defined once."""
    if name == "metadata":
        return reflected_metadata()
    if name in _REFLECTED_TABLES:
        return reflected_metadata().tables[_REFLECTED_TABLES[name]]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
