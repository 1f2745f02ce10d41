"""Bot-like SQLite databases for tests and benchmarks: users and messages with realistic text."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

WORDS = [
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "you",
    "that",
    "it",
    "he",
    "was",
    "for",
    "on",
    "are",
    "as",
    "with",
    "his",
    "they",
    "at",
    "be",
    "this",
    "have",
    "from",
    "or",
    "one",
    "had",
    "by",
    "word",
    "but",
    "not",
    "what",
    "all",
    "were",
    "we",
    "when",
    "your",
    "can",
    "said",
    "there",
    "use",
    "an",
    "each",
    "which",
    "she",
    "do",
    "how",
    "their",
    "if",
    "will",
    "up",
    "other",
    "about",
    "out",
    "many",
    "then",
    "them",
    "these",
    "so",
    "some",
    "her",
    "would",
    "make",
    "like",
    "him",
    "into",
    "time",
    "has",
    "look",
    "two",
    "more",
    "write",
    "go",
    "see",
    "number",
    "no",
    "way",
    "could",
    "people",
    "my",
    "than",
    "first",
    "water",
    "been",
    "call",
    "who",
    "oil",
    "its",
    "now",
    "find",
    "long",
    "down",
    "day",
    "did",
    "get",
    "come",
    "made",
    "may",
    "part",
    "backup",
    "bot",
    "telegram",
    "remember",
    "note",
    "search",
    "hello",
    "thanks",
    "tomorrow",
    "meeting",
    "coffee",
    "🙂",
    "привет",
    "¿qué",
    "tal?",
    "東京",
]

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY, first_name TEXT, username TEXT, first_seen TEXT, last_seen TEXT,
    message_count INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL, chat_id INTEGER NOT NULL,
    date TEXT NOT NULL, text TEXT
);
CREATE INDEX IF NOT EXISTS messages_user ON messages(user_id, date);
"""


TEXTS = 8192
"""Messages are drawn from a pool this big: random's per-word calls were slower than SQLite."""


def sentence(rng: random.Random) -> str:
    return " ".join(rng.choices(WORDS, k=rng.randint(3, 40)))


def create(path: Path, target_bytes: int, seed: int = 7, users: int = 1000) -> int:
    """Grow (or create) a WAL database at ``path`` to about ``target_bytes``; returns message rows."""
    rng = random.Random(seed)
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=OFF")
    connection.executescript(SCHEMA)
    connection.executemany(
        "INSERT OR IGNORE INTO users (id, first_name, username, first_seen, last_seen, message_count)"
        " VALUES (?, ?, ?, '2026-01-01T00:00:00', '2026-11-01T00:00:00', 0)",
        [(uid, f"User{uid}", f"user_{uid}") for uid in range(1, users + 1)],
    )
    connection.commit()
    batch = 5000
    texts = [sentence(rng) for _ in range(TEXTS)]
    days = [f"2026-11-{day:02d}" for day in range(1, 29)]
    draw = rng.random
    while path.stat().st_size + _wal_size(path) < target_bytes:
        connection.executemany(
            "INSERT INTO messages (user_id, chat_id, date, text) VALUES (?, ?, ?, ?)",
            [
                (
                    uid := int(draw() * users) + 1,
                    uid,
                    days[int(draw() * 28)],
                    texts[int(draw() * TEXTS)],
                )
                for _ in range(batch)
            ],
        )
        connection.commit()
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    rows = connection.execute("SELECT count(*) FROM messages").fetchone()[0]
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()
    return int(rows)


def _wal_size(path: Path) -> int:
    wal = Path(f"{path}-wal")
    return wal.stat().st_size if wal.exists() else 0


def create_bot(path: Path, target_bytes: int, seed: int = 7, users: int = 1000) -> int:
    """A database of the bot itself (``conf/schema.sql``, FTS indexes and triggers included),
    filled to about ``target_bytes``: what a restore or a recovery accepts. Returns messages.

    The messages' search index is filled a batch at a time rather than by its insert trigger
    (FTS5 from a trigger, a row at a time, made 100 MB take minutes); the trigger is created
    afterwards from the same schema text, so the file is the bot's own."""
    from conf.schema import schema_sql

    rng = random.Random(seed)
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA journal_mode=OFF")  # WAL once filled: the fill has no readers
    connection.execute("PRAGMA synchronous=OFF")
    connection.executescript(schema_sql())
    connection.execute("DROP TRIGGER messages_fts_insert")
    connection.executemany(
        "INSERT OR IGNORE INTO users (id, first_name, username, first_seen, last_seen, message_count)"
        " VALUES (?, ?, ?, '2026-01-01T00:00:00+00:00', '2026-11-01T00:00:00+00:00', 0)",
        [(uid, f"User{uid}", f"user_{uid}") for uid in range(1, users + 1)],
    )
    connection.commit()
    texts = [sentence(rng) for _ in range(TEXTS)]
    days = [f"2026-11-{day:02d}T12:00:00+00:00" for day in range(1, 29)]
    draw = rng.random
    number = 0
    while path.stat().st_size + _wal_size(path) < target_bytes:
        batch = []
        indexed = connection.execute("SELECT coalesce(max(id), 0) FROM messages").fetchone()[0]
        for _ in range(2000):
            number += 1
            uid = int(draw() * users) + 1
            batch.append((uid, number, uid, texts[int(draw() * TEXTS)], days[int(draw() * 28)]))
        connection.executemany(
            "INSERT INTO messages (chat_id, message_id, user_id, kind, text, sent_at) "
            "VALUES (?, ?, ?, 'text', ?, ?)",
            batch,
        )
        connection.execute(
            "INSERT INTO messages_fts (rowid, text) SELECT id, text FROM messages WHERE id > ?",
            (indexed,),
        )
        connection.commit()
    connection.executescript(schema_sql())
    connection.execute("PRAGMA journal_mode=WAL")
    rows = connection.execute("SELECT count(*) FROM messages").fetchone()[0]
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()
    return int(rows)
