-- The bot's schema: the one definition. The bot creates its tables from this file at start-up,
-- and the watchdog reads it (through conf/schema.py, never importing bot/) to know what a
-- database of the bot looks like and which tables salvage may merge.
--
-- SQLite keeps the text of each CREATE statement in sqlite_master (without IF NOT EXISTS),
-- whitespace included, and the watchdog compares that text with what this file gives. The
-- statements below are written exactly as every database of the bot already holds them (tabs,
-- and the spaces before line ends, included): reformat them and existing databases and backups
-- no longer match.
--
-- "-- @role <role>" before a CREATE TABLE names what the table is:
--   mergeable     the bot's own append-only rows: salvage may merge them by primary key
--   state         key/value state (python-telegram-bot persistence): never merged, a stale
--                 value is worse than none
--   search-index  an FTS5 index over another table, kept in step by triggers; rebuilt from
--                 that table when it is new in an older database
-- Every table has a role. The order is the order of creation and of salvage's merge.

-- @role mergeable
CREATE TABLE IF NOT EXISTS users (
	id BIGINT NOT NULL, 
	first_name TEXT, last_name TEXT, username TEXT, language_code TEXT, first_seen TEXT DEFAULT '' NOT NULL, last_seen TEXT DEFAULT '' NOT NULL, message_count INTEGER DEFAULT 0 NOT NULL, 
	PRIMARY KEY (id)
);

-- @role mergeable
CREATE TABLE IF NOT EXISTS chats (
	id BIGINT NOT NULL, 
	type TEXT NOT NULL, 
	title TEXT, 
	username TEXT, 
	first_seen TEXT NOT NULL, 
	last_seen TEXT NOT NULL, 
	PRIMARY KEY (id)
);

-- @role mergeable
CREATE TABLE IF NOT EXISTS messages (
	id INTEGER NOT NULL, 
	chat_id BIGINT NOT NULL, 
	message_id BIGINT NOT NULL, 
	user_id BIGINT, 
	kind TEXT NOT NULL, 
	text TEXT, 
	sent_at TEXT NOT NULL, 
	edited_at TEXT, 
	update_id BIGINT, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_messages_chat_message UNIQUE (chat_id, message_id)
);

CREATE INDEX IF NOT EXISTS ix_messages_user ON messages (user_id, id);

-- @role mergeable
CREATE TABLE IF NOT EXISTS notes (
	id INTEGER NOT NULL, 
	user_id BIGINT NOT NULL, 
	text TEXT NOT NULL, 
	created_at TEXT NOT NULL, 
	source_chat_id BIGINT, 
	source_message_id BIGINT, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_notes_source UNIQUE (source_chat_id, source_message_id)
);

CREATE INDEX IF NOT EXISTS ix_notes_user ON notes (user_id, id);

-- @role state
CREATE TABLE IF NOT EXISTS persistence (
	kind TEXT NOT NULL, 
	name TEXT NOT NULL, 
	"key" TEXT NOT NULL, 
	value TEXT NOT NULL, 
	updated_at TEXT NOT NULL, 
	PRIMARY KEY (kind, name, "key")
);

-- @role mergeable
CREATE TABLE IF NOT EXISTS processed_updates (
	update_id BIGINT NOT NULL, 
	processed_at TEXT NOT NULL, 
	PRIMARY KEY (update_id)
);

-- @role search-index
CREATE VIRTUAL TABLE IF NOT EXISTS messages_fts USING fts5(text, content='messages', content_rowid='id', tokenize='unicode61 remove_diacritics 2');

CREATE TRIGGER IF NOT EXISTS messages_fts_insert AFTER INSERT ON messages BEGIN INSERT INTO messages_fts(rowid, text) VALUES (new.id, new.text); END;

CREATE TRIGGER IF NOT EXISTS messages_fts_delete AFTER DELETE ON messages BEGIN INSERT INTO messages_fts(messages_fts, rowid, text) VALUES ('delete', old.id, old.text); END;

CREATE TRIGGER IF NOT EXISTS messages_fts_update AFTER UPDATE OF text ON messages BEGIN INSERT INTO messages_fts(messages_fts, rowid, text) VALUES ('delete', old.id, old.text); INSERT INTO messages_fts(rowid, text) VALUES (new.id, new.text); END;

-- @role search-index
CREATE VIRTUAL TABLE IF NOT EXISTS notes_fts USING fts5(text, content='notes', content_rowid='id', tokenize='unicode61 remove_diacritics 2');

CREATE TRIGGER IF NOT EXISTS notes_fts_insert AFTER INSERT ON notes BEGIN INSERT INTO notes_fts(rowid, text) VALUES (new.id, new.text); END;

CREATE TRIGGER IF NOT EXISTS notes_fts_delete AFTER DELETE ON notes BEGIN INSERT INTO notes_fts(notes_fts, rowid, text) VALUES ('delete', old.id, old.text); END;

CREATE TRIGGER IF NOT EXISTS notes_fts_update AFTER UPDATE OF text ON notes BEGIN INSERT INTO notes_fts(notes_fts, rowid, text) VALUES ('delete', old.id, old.text); INSERT INTO notes_fts(rowid, text) VALUES (new.id, new.text); END;

-- @role state
-- Messages decided while an update was handled, not sent yet (bot/delivery.py).
CREATE TABLE IF NOT EXISTS outbox (
	id INTEGER NOT NULL,
	chat_id BIGINT NOT NULL,
	method TEXT NOT NULL,
	params TEXT NOT NULL,
	created_at TEXT NOT NULL,
	PRIMARY KEY (id)
);

-- @role state
-- Who asked /deleteme, and when: written in the erasure's own transaction. On PostgreSQL this
-- is the erasure record (carried into every dump, made again by every restore:
-- watchdog/data/erasures_pg.py); on SQLite the record is conf/erasures.py's file, and this
-- table one more copy of it.
CREATE TABLE IF NOT EXISTS erasures (
	user_id BIGINT NOT NULL,
	update_id BIGINT NOT NULL,
	erased_at TEXT NOT NULL,
	PRIMARY KEY (user_id, update_id)
);

-- @role state
-- Which instance is sending an outbox row, and until when its lease holds (milliseconds since
-- 1970 on the server's clock). Used on a server shared by instances only (bot/delivery.py).
CREATE TABLE IF NOT EXISTS outbox_claims (
	id BIGINT NOT NULL,
	claimed_by TEXT NOT NULL,
	expires_ms BIGINT NOT NULL,
	PRIMARY KEY (id)
);
