"""The one place the bot opens its database, through ``dataset``.

Rules (see FIELD-NOTES): the whole schema is created up front at start-up (dataset's implicit
column creation is not safe under concurrency), every write runs inside ``with db:`` (a write
outside a transaction is never committed), and all database work happens on one thread
(:class:`DatabaseThread`).

SQLite-only pieces sit behind one seam, the "SQLite seam" section below: the connection PRAGMAs
(:func:`connect`) and full-text search with FTS5 (:class:`SQLiteSearch`). Everything else is
portable SQL (``INSERT … ON CONFLICT`` works in SQLite and PostgreSQL alike), so a ``DATABASE_URL``
for PostgreSQL later swaps the seam, not the bot.

Transactions. A method opens its own short transaction, unless a *batch* is open
(:meth:`Storage.begin_batch`): then it joins it, and nothing is committed before
:meth:`Storage.commit_batch`, which also records the update_ids the batch handled. That is how an
update's effects, its persistence rows and its update_id reach the disk together or not at all.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import dataset
import sqlalchemy as sa
from sqlalchemy import text

from bot import codec

log = logging.getLogger(__name__)

T = TypeVar("T")

USER_FIELDS = ("first_name", "last_name", "username", "language_code")
NOTE_MAX_CHARS = 4096
"""A note is at most one Telegram message long."""
SEARCH_MAX_TERMS = 16
SEARCH_MAX_TERM_CHARS = 64
PROCESSED_UPDATES_KEPT = timedelta(days=7)
"""Telegram keeps an unconfirmed update for 24 hours; a week of update_ids is plenty."""

# Kinds of persistence rows (one row per key: per user, per chat, per bot_data key, ...).
USER_DATA = "user_data"
CHAT_DATA = "chat_data"
BOT_DATA = "bot_data"
CALLBACK_DATA = "callback_data"
CONVERSATION = "conversation"


# ======================================================================== the SQLite seam
SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=FULL",
    "PRAGMA busy_timeout=5000",
    "PRAGMA foreign_keys=ON",
)
"""Run on every new SQLite connection."""


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def connect(url: str) -> dataset.Database:
    """Open the database; the SQLite-specific connection settings live here and nowhere else."""
    if url.startswith("sqlite:"):
        # dataset adds journal_mode=WAL itself; asking twice is harmless and keeps the list whole.
        return dataset.connect(url, on_connect_statements=list(SQLITE_PRAGMAS))
    return dataset.connect(url, sqlite_wal_mode=False)


class SQLiteSearch:
    """Full-text search over messages and notes with FTS5 (external-content tables kept in step
    by triggers, so inserts, edits and erasure reach the index in the same transaction)."""

    TOKENIZER = "unicode61 remove_diacritics 2"

    def create(self, conn: sa.Connection) -> None:
        for table in ("messages", "notes"):
            fts = f"{table}_fts"
            existed = conn.execute(
                text("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = :name"),
                {"name": fts},
            ).first()
            conn.execute(
                text(
                    f"CREATE VIRTUAL TABLE IF NOT EXISTS {fts} USING fts5("
                    f"text, content='{table}', content_rowid='id', tokenize='{self.TOKENIZER}')"
                )
            )
            conn.execute(
                text(
                    f"CREATE TRIGGER IF NOT EXISTS {table}_fts_insert AFTER INSERT ON {table} "
                    f"BEGIN INSERT INTO {fts}(rowid, text) VALUES (new.id, new.text); END"
                )
            )
            conn.execute(
                text(
                    f"CREATE TRIGGER IF NOT EXISTS {table}_fts_delete AFTER DELETE ON {table} "
                    f"BEGIN INSERT INTO {fts}({fts}, rowid, text) "
                    f"VALUES ('delete', old.id, old.text); END"
                )
            )
            conn.execute(
                text(
                    f"CREATE TRIGGER IF NOT EXISTS {table}_fts_update AFTER UPDATE OF text "
                    f"ON {table} BEGIN "
                    f"INSERT INTO {fts}({fts}, rowid, text) VALUES ('delete', old.id, old.text); "
                    f"INSERT INTO {fts}(rowid, text) VALUES (new.id, new.text); END"
                )
            )
            if not existed:  # an older database: index what it already holds
                conn.execute(text(f"INSERT INTO {fts}({fts}) VALUES ('rebuild')"))

    _QUERY = text(
        """
        SELECT kind, id, text, at FROM (
            SELECT 'message' AS kind, m.id AS id, m.text AS text, m.sent_at AS at,
                   bm25(messages_fts) AS rank
            FROM messages_fts JOIN messages m ON m.id = messages_fts.rowid
            WHERE messages_fts MATCH :query AND m.user_id = :user_id
              AND substr(m.text, 1, 1) <> '/'
            UNION ALL
            SELECT 'note', n.id, n.text, n.created_at, bm25(notes_fts)
            FROM notes_fts JOIN notes n ON n.id = notes_fts.rowid
            WHERE notes_fts MATCH :query AND n.user_id = :user_id
        )
        ORDER BY rank, at DESC
        LIMIT :limit
        """
    )

    def search(
        self, conn: sa.Connection, user_id: int, terms: Sequence[str], limit: int
    ) -> list[dict[str, Any]]:
        """All terms (as prefixes) first; when nothing has them all, any of them."""
        quoted = ['"' + term.replace('"', '""') + '"*' for term in terms]
        for joiner in (" ", " OR "):
            rows = conn.execute(
                self._QUERY, {"query": joiner.join(quoted), "user_id": user_id, "limit": limit}
            ).mappings()
            found = [dict(row) for row in rows]
            if found or len(quoted) == 1:
                return found
        return []


# ============================================================================ portable part
metadata = sa.MetaData()

chats_table = sa.Table(
    "chats",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("type", sa.Text, nullable=False),
    sa.Column("title", sa.Text),
    sa.Column("username", sa.Text),
    sa.Column("first_seen", sa.Text, nullable=False),
    sa.Column("last_seen", sa.Text, nullable=False),
)

messages_table = sa.Table(
    "messages",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("chat_id", sa.BigInteger, nullable=False),
    sa.Column("message_id", sa.BigInteger, nullable=False),
    sa.Column("user_id", sa.BigInteger),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("text", sa.Text),
    sa.Column("sent_at", sa.Text, nullable=False),
    sa.Column("edited_at", sa.Text),
    sa.Column("update_id", sa.BigInteger),
    sa.UniqueConstraint("chat_id", "message_id", name="uq_messages_chat_message"),
    sa.Index("ix_messages_user", "user_id", "id"),
)

notes_table = sa.Table(
    "notes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("user_id", sa.BigInteger, nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("created_at", sa.Text, nullable=False),
    # The message that created the note: a redelivered update cannot add it twice.
    sa.Column("source_chat_id", sa.BigInteger),
    sa.Column("source_message_id", sa.BigInteger),
    sa.UniqueConstraint("source_chat_id", "source_message_id", name="uq_notes_source"),
    sa.Index("ix_notes_user", "user_id", "id"),
)

persistence_table = sa.Table(
    "persistence",
    metadata,
    sa.Column("kind", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("updated_at", sa.Text, nullable=False),
)

processed_updates_table = sa.Table(
    "processed_updates",
    metadata,
    sa.Column("update_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("processed_at", sa.Text, nullable=False),
)

_TOUCH_USER = text(
    """
    INSERT INTO users (id, first_name, last_name, username, language_code,
                       first_seen, last_seen, message_count)
    VALUES (:id, :first_name, :last_name, :username, :language_code, :now, :now, :count)
    ON CONFLICT (id) DO UPDATE SET
        first_name = excluded.first_name,
        last_name = excluded.last_name,
        username = excluded.username,
        language_code = excluded.language_code,
        last_seen = excluded.last_seen,
        message_count = users.message_count + excluded.message_count
    """
)
_TOUCH_CHAT = text(
    """
    INSERT INTO chats (id, type, title, username, first_seen, last_seen)
    VALUES (:id, :type, :title, :username, :now, :now)
    ON CONFLICT (id) DO UPDATE SET
        type = excluded.type, title = excluded.title, username = excluded.username,
        last_seen = excluded.last_seen
    """
)
_INSERT_MESSAGE = text(
    """
    INSERT INTO messages (chat_id, message_id, user_id, kind, text, sent_at, update_id)
    VALUES (:chat_id, :message_id, :user_id, :kind, :text, :sent_at, :update_id)
    ON CONFLICT (chat_id, message_id) DO NOTHING
    """
)
_UPSERT_PERSISTENCE = text(
    """
    INSERT INTO persistence (kind, name, key, value, updated_at)
    VALUES (:kind, :name, :key, :value, :now)
    ON CONFLICT (kind, name, key) DO UPDATE SET
        value = excluded.value, updated_at = excluded.updated_at
    """
)
_DELETE_PERSISTENCE = text(
    "DELETE FROM persistence WHERE kind = :kind AND name = :name AND key = :key"
)
_RECORD_UPDATE = text(
    """
    INSERT INTO processed_updates (update_id, processed_at) VALUES (:update_id, :now)
    ON CONFLICT (update_id) DO NOTHING
    """
)


def timestamp(moment: datetime) -> str:
    """UTC ISO 8601 with microseconds: sorts as text, reads the same in any database."""
    if moment.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def clean_text(value: str | None) -> str | None:
    """Text a database can store: lone surrogates (not valid Unicode) become U+FFFD."""
    if value is None:
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return value


def search_terms(query: str) -> list[str]:
    """The words of a search: letters and digits in any script, bounded in number and length."""
    words = re.findall(r"\w+", clean_text(query) or "")
    return [word[:SEARCH_MAX_TERM_CHARS] for word in words[:SEARCH_MAX_TERMS]]


@dataclass(frozen=True)
class UserRecord:
    id: int
    first_name: str | None
    last_name: str | None
    username: str | None
    language_code: str | None
    first_seen: datetime
    last_seen: datetime
    message_count: int

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> UserRecord:
        return cls(
            id=int(row["id"]),
            first_name=row["first_name"],
            last_name=row["last_name"],
            username=row["username"],
            language_code=row["language_code"],
            first_seen=datetime.fromisoformat(row["first_seen"]),
            last_seen=datetime.fromisoformat(row["last_seen"]),
            message_count=int(row["message_count"]),
        )

    @property
    def is_new(self) -> bool:
        """Seen exactly once: the message being handled is the first."""
        return self.message_count <= 1


@dataclass(frozen=True)
class IncomingMessage:
    """What the history keeps of one message."""

    chat_id: int
    message_id: int
    user_id: int | None
    kind: str
    text: str | None
    sent_at: datetime
    update_id: int | None = None


@dataclass(frozen=True)
class Note:
    number: int
    id: int
    text: str
    created_at: datetime


@dataclass(frozen=True)
class SearchHit:
    kind: str  # "message" or "note"
    text: str
    at: datetime


class Storage:
    """The bot's tables. Synchronous: call it from one thread (see :class:`DatabaseThread`)."""

    def __init__(self, db: dataset.Database) -> None:
        self.db = db
        self.is_sqlite = db.is_sqlite
        self.search_index = SQLiteSearch() if self.is_sqlite else None
        self._batch_open = False

    @classmethod
    def open(cls, url_or_path: str | Path) -> Storage:
        """Connect and create the schema."""
        url = url_or_path if isinstance(url_or_path, str) else sqlite_url(url_or_path)
        storage = cls(connect(url))
        try:
            storage.create_schema()
        except BaseException:
            storage.close()
            raise
        return storage

    # ------------------------------------------------------------------------------ schema
    def create_schema(self) -> None:
        """Create missing tables, columns, indexes and the search index. Idempotent; run once
        at start-up, before any other work."""
        db = self.db
        types = db.types
        users = db.create_table(
            "users", primary_id="id", primary_type=types.bigint, primary_increment=False
        )
        for name in USER_FIELDS:
            users.create_column(name, types.text, nullable=True)
        users.create_column("first_seen", types.text, nullable=False, server_default="")
        users.create_column("last_seen", types.text, nullable=False, server_default="")
        users.create_column(
            "message_count", types.integer, nullable=False, server_default=text("0")
        )
        with db:
            metadata.create_all(db.executable, checkfirst=True)
            if self.search_index is not None:
                self.search_index.create(db.executable)

    def tables(self) -> list[str]:
        return sorted(self.db.tables)

    # ------------------------------------------------------------------------ transactions
    def _run(self, statement: Any, params: Mapping[str, Any] | None = None) -> Any:
        """Execute on this thread's connection (inside the caller's ``with self.db``)."""
        return self.db.executable.execute(statement, dict(params or {}))

    def _rows(self, statement: Any, params: Mapping[str, Any] | None = None) -> list[dict]:
        return [dict(row) for row in self._run(statement, params).mappings()]

    @property
    def batch_open(self) -> bool:
        return self._batch_open

    def begin_batch(self) -> None:
        """Open the transaction that the next calls join (idempotent)."""
        if not self._batch_open:
            self.db.begin()
            self._batch_open = True

    def commit_batch(self, update_ids: Iterable[int], now: datetime) -> None:
        """Record the handled update_ids and commit everything the batch did, in one go."""
        if not self._batch_open:
            self.db.begin()
            self._batch_open = True
        try:
            stamp = timestamp(now)
            for update_id in update_ids:
                self._run(_RECORD_UPDATE, {"update_id": int(update_id), "now": stamp})
            self.db.commit()
        except BaseException:
            self.db.rollback()
            raise
        finally:
            self._batch_open = False

    def rollback_batch(self) -> None:
        if self._batch_open:
            self._batch_open = False
            self.db.rollback()

    def is_processed(self, update_id: int) -> bool:
        with self.db:
            row = self._run(
                text("SELECT 1 FROM processed_updates WHERE update_id = :id"),
                {"id": int(update_id)},
            ).first()
        return row is not None

    def prune_processed(self, now: datetime, keep: timedelta = PROCESSED_UPDATES_KEPT) -> int:
        with self.db:
            result = self._run(
                text("DELETE FROM processed_updates WHERE processed_at < :cutoff"),
                {"cutoff": timestamp(now - keep)},
            )
        return int(result.rowcount or 0)

    # ------------------------------------------------------------------------------- users
    def touch_user(
        self, user: Mapping[str, Any], now: datetime, *, counted: bool = True
    ) -> UserRecord:
        """Insert the user, or refresh their names and last_seen; message_count goes up by one
        when ``counted``. One atomic upsert (SQLite and PostgreSQL alike)."""
        params: dict[str, Any] = {name: _text_or_none(user.get(name)) for name in USER_FIELDS}
        params.update(id=int(user["id"]), now=timestamp(now), count=1 if counted else 0)
        with self.db as tx:
            self._run(_TOUCH_USER, params)
            row = tx["users"].find_one(id=params["id"])
        assert row is not None
        return UserRecord.from_row(row)

    def get_user(self, user_id: int) -> UserRecord | None:
        with self.db as tx:
            row = tx["users"].find_one(id=int(user_id))
        return None if row is None else UserRecord.from_row(row)

    def count_users(self) -> int:
        with self.db as tx:
            return int(tx["users"].count())

    def touch_chat(self, chat: Mapping[str, Any], now: datetime) -> None:
        with self.db:
            self._run(
                _TOUCH_CHAT,
                {
                    "id": int(chat["id"]),
                    "type": str(chat.get("type") or "unknown"),
                    "title": _text_or_none(chat.get("title")),
                    "username": _text_or_none(chat.get("username")),
                    "now": timestamp(now),
                },
            )

    # ----------------------------------------------------------------------------- history
    def record_message(
        self,
        message: IncomingMessage,
        user: Mapping[str, Any] | None,
        chat: Mapping[str, Any],
        now: datetime,
    ) -> tuple[UserRecord | None, bool]:
        """Store a new message, the chat and the sender; ``(sender, stored)``. A message already
        stored (same chat and message id: a redelivery) is not stored or counted again."""
        with self.db:
            self.touch_chat(chat, now)
            result = self._run(
                _INSERT_MESSAGE,
                {
                    "chat_id": message.chat_id,
                    "message_id": message.message_id,
                    "user_id": message.user_id,
                    "kind": message.kind,
                    "text": clean_text(message.text),
                    "sent_at": timestamp(message.sent_at),
                    "update_id": message.update_id,
                },
            )
            stored = bool(result.rowcount)
            record = self.touch_user(user, now, counted=stored) if user is not None else None
        return record, stored

    def record_edit(self, message: IncomingMessage, edited_at: datetime) -> bool:
        """The edited text replaces the stored one (the search index follows). True when the
        message was known; an edit of a message never seen is stored as a new message."""
        with self.db:
            result = self._run(
                text(
                    "UPDATE messages SET text = :text, kind = :kind, edited_at = :edited_at "
                    "WHERE chat_id = :chat_id AND message_id = :message_id"
                ),
                {
                    "text": clean_text(message.text),
                    "kind": message.kind,
                    "edited_at": timestamp(edited_at),
                    "chat_id": message.chat_id,
                    "message_id": message.message_id,
                },
            )
            if result.rowcount:
                return True
            self._run(
                _INSERT_MESSAGE,
                {
                    "chat_id": message.chat_id,
                    "message_id": message.message_id,
                    "user_id": message.user_id,
                    "kind": message.kind,
                    "text": clean_text(message.text),
                    "sent_at": timestamp(message.sent_at),
                    "update_id": message.update_id,
                },
            )
            self._run(
                text(
                    "UPDATE messages SET edited_at = :edited_at "
                    "WHERE chat_id = :chat_id AND message_id = :message_id"
                ),
                {
                    "edited_at": timestamp(edited_at),
                    "chat_id": message.chat_id,
                    "message_id": message.message_id,
                },
            )
        return False

    def messages_of(self, user_id: int) -> list[dict[str, Any]]:
        with self.db:
            return self._rows(
                text(
                    "SELECT chat_id, message_id, kind, text, sent_at, edited_at FROM messages "
                    "WHERE user_id = :user_id ORDER BY id"
                ),
                {"user_id": int(user_id)},
            )

    # ------------------------------------------------------------------------------- notes
    def add_note(
        self,
        user_id: int,
        note: str,
        now: datetime,
        source: tuple[int, int] | None = None,
    ) -> Note:
        """Save a note; its number in the user's list. The same source message (a redelivered
        update) gives back the note it made instead of a second one."""
        note = clean_text(note) or ""
        if not note.strip():
            raise ValueError("a note cannot be empty")
        if len(note) > NOTE_MAX_CHARS:
            raise ValueError(f"a note holds at most {NOTE_MAX_CHARS} characters")
        chat_id, message_id = source if source is not None else (None, None)
        with self.db:
            result = self._run(
                text(
                    "INSERT INTO notes (user_id, text, created_at, source_chat_id, "
                    "source_message_id) VALUES (:user_id, :text, :now, :chat_id, :message_id) "
                    "ON CONFLICT (source_chat_id, source_message_id) DO NOTHING"
                ),
                {
                    "user_id": int(user_id),
                    "text": note,
                    "now": timestamp(now),
                    "chat_id": chat_id,
                    "message_id": message_id,
                },
            )
            if result.rowcount:
                note_id = result.lastrowid
            else:
                note_id = self._run(
                    text(
                        "SELECT id FROM notes WHERE source_chat_id = :chat_id "
                        "AND source_message_id = :message_id"
                    ),
                    {"chat_id": chat_id, "message_id": message_id},
                ).scalar_one()
            notes = self.list_notes(user_id)
        for found in notes:
            if found.id == note_id:
                return found
        raise RuntimeError("the note just saved is missing")  # pragma: no cover

    def list_notes(self, user_id: int) -> list[Note]:
        with self.db:
            rows = self._rows(
                text("SELECT id, text, created_at FROM notes WHERE user_id = :user_id ORDER BY id"),
                {"user_id": int(user_id)},
            )
        return [
            Note(
                number=number,
                id=int(row["id"]),
                text=row["text"],
                created_at=datetime.fromisoformat(row["created_at"]),
            )
            for number, row in enumerate(rows, start=1)
        ]

    def forget_note(self, user_id: int, number: int) -> Note | None:
        """Delete the user's note with this number (as /notes shows it); the note, or None."""
        with self.db:
            notes = self.list_notes(user_id)
            if not 1 <= number <= len(notes):
                return None
            note = notes[number - 1]
            self._run(text("DELETE FROM notes WHERE id = :id"), {"id": note.id})
        return note

    # ------------------------------------------------------------------------------ search
    def search(self, user_id: int, query: str, limit: int = 10) -> list[SearchHit]:
        """The user's own messages (commands left out) and notes matching ``query``, best
        first. Empty when the query has no words."""
        terms = search_terms(query)
        if not terms:
            return []
        with self.db:
            if self.search_index is not None:
                rows = self.search_index.search(self.db.executable, int(user_id), terms, limit)
            else:  # pragma: no cover - a server database gets its own search later
                rows = self._search_like(int(user_id), terms, limit)
        return [
            SearchHit(kind=row["kind"], text=row["text"], at=datetime.fromisoformat(row["at"]))
            for row in rows
        ]

    def _search_like(
        self, user_id: int, terms: Sequence[str], limit: int
    ) -> list[dict[str, Any]]:  # pragma: no cover - portable fallback, unranked
        pattern = "%" + terms[0].replace("%", "").replace("_", "") + "%"
        return self._rows(
            text(
                "SELECT 'note' AS kind, id, text, created_at AS at FROM notes "
                "WHERE user_id = :user_id AND text LIKE :pattern "
                "UNION ALL SELECT 'message', id, text, sent_at FROM messages "
                "WHERE user_id = :user_id AND text LIKE :pattern AND text NOT LIKE '/%' "
                "ORDER BY at DESC LIMIT :limit"
            ),
            {"user_id": user_id, "pattern": pattern, "limit": limit},
        )

    # ------------------------------------------------------------------------- the user
    def user_stats(self, user_id: int) -> dict[str, Any]:
        with self.db:
            kinds = {
                row["kind"]: int(row["n"])
                for row in self._rows(
                    text(
                        "SELECT kind, COUNT(*) AS n FROM messages WHERE user_id = :user_id "
                        "GROUP BY kind ORDER BY n DESC, kind"
                    ),
                    {"user_id": int(user_id)},
                )
            }
            edited = self._run(
                text(
                    "SELECT COUNT(*) FROM messages WHERE user_id = :user_id "
                    "AND edited_at IS NOT NULL"
                ),
                {"user_id": int(user_id)},
            ).scalar_one()
            notes = self._run(
                text("SELECT COUNT(*) FROM notes WHERE user_id = :user_id"),
                {"user_id": int(user_id)},
            ).scalar_one()
            user = self.get_user(user_id)
        return {
            "user": user,
            "messages": sum(kinds.values()),
            "by_kind": kinds,
            "edited": int(edited),
            "notes": int(notes),
        }

    def export_user(self, user_id: int) -> dict[str, Any]:
        """Everything stored about the user, as plain JSON-ready data."""
        with self.db as tx:
            user = tx["users"].find_one(id=int(user_id))
            notes = self.list_notes(user_id)
            messages = self.messages_of(user_id)
            persisted = {
                kind: self._persisted_value(kind, "", codec.dumps(int(user_id)))
                for kind in (USER_DATA, CHAT_DATA)
            }
        return {
            "user": dict(user) if user is not None else None,
            "notes": [
                {"number": n.number, "text": n.text, "created_at": n.created_at.isoformat()}
                for n in notes
            ],
            "messages": messages,
            "user_data": persisted[USER_DATA],
            "private_chat_data": persisted[CHAT_DATA],
        }

    def _persisted_value(self, kind: str, name: str, key: str) -> Any:
        row = self._run(
            text(
                "SELECT value FROM persistence WHERE kind = :kind AND name = :name AND key = :key"
            ),
            {"kind": kind, "name": name, "key": key},
        ).first()
        # Stored in the codec's tagged JSON form, which is plain JSON as it is.
        return None if row is None else json.loads(row[0])

    def erase_user(self, user_id: int) -> dict[str, int]:
        """Delete everything of the user: their row, messages (and their private chat's),
        notes, the private chat, and their persistence rows (user data, private chat data,
        conversation states keyed by them). Counts per table."""
        uid = int(user_id)
        key = codec.dumps(uid)
        counts: dict[str, int] = {}
        with self.db:
            for table, statement in (
                ("messages", "DELETE FROM messages WHERE user_id = :uid OR chat_id = :uid"),
                ("notes", "DELETE FROM notes WHERE user_id = :uid"),
                ("users", "DELETE FROM users WHERE id = :uid"),
                ("chats", "DELETE FROM chats WHERE id = :uid"),
            ):
                counts[table] = int(self._run(text(statement), {"uid": uid}).rowcount or 0)
            removed = 0
            for kind in (USER_DATA, CHAT_DATA):
                removed += int(
                    self._run(_DELETE_PERSISTENCE, {"kind": kind, "name": "", "key": key}).rowcount
                    or 0
                )
            for row in self._rows(
                text("SELECT name, key FROM persistence WHERE kind = :kind"),
                {"kind": CONVERSATION},
            ):
                if uid in key_ids(row["key"]):
                    self._run(
                        _DELETE_PERSISTENCE,
                        {"kind": CONVERSATION, "name": row["name"], "key": row["key"]},
                    )
                    removed += 1
            counts["persistence"] = removed
        return counts

    # ------------------------------------------------------------------------ persistence
    def load_persistence(self, kind: str, name: str | None = None) -> list[tuple[str, str, str]]:
        """``(name, key, value)`` rows of one kind (and name), in key order."""
        query = "SELECT name, key, value FROM persistence WHERE kind = :kind"
        params: dict[str, Any] = {"kind": kind}
        if name is not None:
            query += " AND name = :name"
            params["name"] = name
        with self.db:
            rows = self._run(text(query + " ORDER BY name, key"), params).all()
        return [(row[0], row[1], row[2]) for row in rows]

    def write_persistence(
        self, changes: Sequence[tuple[str, str, str, str | None]], now: datetime
    ) -> None:
        """Apply ``(kind, name, key, value)`` changes; a ``None`` value deletes the row."""
        if not changes:
            return
        stamp = timestamp(now)
        with self.db:
            for kind, name, key, value in changes:
                if value is None:
                    self._run(_DELETE_PERSISTENCE, {"kind": kind, "name": name, "key": key})
                else:
                    self._run(
                        _UPSERT_PERSISTENCE,
                        {"kind": kind, "name": name, "key": key, "value": value, "now": stamp},
                    )

    def count_rows(self) -> dict[str, int]:
        with self.db:
            return {
                table: int(self._run(text(f"SELECT COUNT(*) FROM {table}")).scalar_one())
                for table in ("users", "chats", "messages", "notes", "persistence")
            }

    def close(self) -> None:
        if self._batch_open:
            self.rollback_batch()
        self.db.close()


def key_ids(encoded: str) -> set[int]:
    """The integers in a stored conversation key (chat and user ids)."""
    try:
        key = codec.loads(encoded)
    except ValueError:
        return set()
    parts = key if isinstance(key, tuple | list) else (key,)
    return {part for part in parts if type(part) is int}


def _text_or_none(value: Any) -> str | None:
    return None if value is None else clean_text(str(value))


class DatabaseThread:
    """Runs every database call on one dedicated thread, off the event loop.

    dataset keeps a connection per thread and its schema handling is not thread-safe; one worker
    thread keeps it simple, and queued calls run in order.
    """

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="erixcast-db")

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run and wait (for start-up and shutdown, outside the event loop)."""
        return self._executor.submit(fn, *args, **kwargs).result()

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=False)
