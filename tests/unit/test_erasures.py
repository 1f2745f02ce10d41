"""The erasure record and the one function that makes erasures again on an installed database:
real SQLite files of the bot's schema, real record files (damaged on purpose)."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.journaling import BatchJournal, ErasureNotRecorded
from conf.erasures import merge_lines, read_record, record_erasure
from conf.journal import ERASURES_FILE, UPDATE, JournalEntry, JournalWriter, encode
from conf.layout import DataLayout
from conf.schema import schema_sql
from watchdog.data.erasure_copies import copies
from watchdog.data.erasures import apply_erasures, erase_again
from watchdog.data.salvage import salvage_and_merge

ERASED, KEPT = 42, 7
BEFORE = "2026-03-01T10:00:00.000000+00:00"
AFTER = "2026-03-03T10:00:00.000000+00:00"
ERASED_AT = datetime(2026, 3, 2, tzinfo=UTC).timestamp()
ERASING_UPDATE = 500


@pytest.fixture
def layout(tmp_path: Path) -> DataLayout:
    layout = DataLayout(tmp_path / "data", tmp_path / "data" / "erixcast.db")
    layout.ensure()
    return layout


def make_database(path: Path) -> None:
    """The bot's schema; the erased user's rows from before the erasure, and the other user's."""
    with sqlite3.connect(path) as connection:
        connection.executescript(schema_sql())
        for uid in (ERASED, KEPT):
            add_user(connection, uid, BEFORE, update_id=100 + uid)


def add_user(connection: sqlite3.Connection, uid: int, at: str, update_id: int) -> None:
    connection.execute(
        "INSERT INTO users (id, first_name, first_seen, last_seen) VALUES (?, 'U', ?, ?)",
        (uid, at, at),
    )
    connection.execute(
        "INSERT OR IGNORE INTO chats (id, type, first_seen, last_seen) VALUES (?, 'private', ?, ?)",
        (uid, at, at),
    )
    connection.execute(
        "INSERT INTO messages (chat_id, message_id, user_id, kind, text, sent_at, update_id) "
        "VALUES (?, ?, ?, 'text', ?, ?, ?)",
        (uid, update_id, uid, f"private thing of {uid} at {at[:10]}", at, update_id),
    )
    connection.execute(
        "INSERT INTO notes (user_id, text, created_at) VALUES (?, ?, ?)",
        (uid, f"note of {uid} at {at[:10]}", at),
    )
    for kind, key in (
        ("user_data", json.dumps(uid)),
        ("chat_data", json.dumps(uid)),
        ("conversation", json.dumps({"$tuple": [uid, uid]})),
    ):
        connection.execute(
            "INSERT OR REPLACE INTO persistence (kind, name, key, value, updated_at) "
            "VALUES (?, ?, ?, '{}', ?)",
            (kind, "talk" if kind == "conversation" else "", key, at),
        )


def held(path: Path, uid: int) -> dict[str, int]:
    with sqlite3.connect(path) as connection:
        counts = {
            "users": connection.execute("SELECT count(*) FROM users WHERE id = ?", (uid,)),
            "messages": connection.execute(
                "SELECT count(*) FROM messages WHERE user_id = ? OR chat_id = ?", (uid, uid)
            ),
            "notes": connection.execute("SELECT count(*) FROM notes WHERE user_id = ?", (uid,)),
            "persistence": connection.execute(
                "SELECT count(*) FROM persistence WHERE key LIKE ?", (f"%{uid}%",)
            ),
            "search": connection.execute(
                "SELECT count(*) FROM messages_fts WHERE messages_fts MATCH ?", (f'"of {uid}"',)
            ),
        }
        return {name: int(cursor.fetchone()[0]) for name, cursor in counts.items()}


def erase(layout: DataLayout, uid: int = ERASED) -> None:
    record_erasure(layout.journal, uid, ERASING_UPDATE, ERASED_AT)


def test_an_older_database_loses_the_erased_user_and_keeps_everyone_else(layout):
    make_database(layout.database)
    erase(layout)
    report = apply_erasures(layout)
    assert report.problems == []
    assert report.users == 1 and report.erasures == 1
    assert held(layout.database, ERASED) == dict.fromkeys(held(layout.database, KEPT), 0)
    assert held(layout.database, KEPT) == {
        "users": 1, "messages": 1, "notes": 1, "persistence": 3, "search": 1
    }  # fmt: skip
    again = apply_erasures(layout)  # idempotent
    assert (again.users, again.rows, again.problems) == (0, {}, [])


def test_what_a_returning_user_wrote_after_the_erasure_stays(layout):
    make_database(layout.database)
    erase(layout)
    apply_erasures(layout)
    with sqlite3.connect(layout.database) as connection:
        add_user(connection, ERASED, AFTER, update_id=ERASING_UPDATE + 5)
    report = apply_erasures(layout)
    assert report.rows == {}
    assert held(layout.database, ERASED) == {
        "users": 1, "messages": 1, "notes": 1, "persistence": 3, "search": 1
    }  # fmt: skip


def test_a_row_whose_time_cannot_be_read_counts_as_old(layout):
    make_database(layout.database)
    with sqlite3.connect(layout.database) as connection:
        connection.execute("UPDATE notes SET created_at = 'zzz' WHERE user_id = ?", (ERASED,))
        connection.execute("UPDATE users SET first_seen = '' WHERE id = ?", (ERASED,))
    erase(layout)
    apply_erasures(layout)
    assert held(layout.database, ERASED)["notes"] == 0
    assert held(layout.database, ERASED)["users"] == 0


def test_a_damaged_line_costs_that_line_only_is_set_aside_and_said(layout):
    erase(layout, 1)
    live = layout.journal / ERASURES_FILE
    with live.open("ab") as handle:
        handle.write(b"0123456789abcdef not an erasure at all\n")
    erase(layout, 2)  # written after the damage: still read, and the record healed
    read = read_record(live)
    assert [e.user_id for e in read.entries] == [1, 2] and not read.damaged
    asides = list(layout.journal.glob(f"{ERASURES_FILE}.damaged-*"))
    assert len(asides) == 1 and b"not an erasure" in asides[0].read_bytes()

    with live.open("ab") as handle:
        handle.write(b"garbage")
    entries, problems = apply_erasures(layout).erasures, apply_erasures(layout).problems
    assert entries == 2
    assert problems == []  # the first call set it aside and said so; the record is whole again
    first = read_record(live)
    assert not first.damaged and [e.user_id for e in first.entries] == [1, 2]


def test_a_damaged_record_is_reported_by_the_install_that_reads_it(layout, caplog):
    make_database(layout.database)
    erase(layout)
    live = layout.journal / ERASURES_FILE
    live.write_bytes(live.read_bytes()[:-5] + b"XXXXX")  # the only line, torn
    report = apply_erasures(layout)
    assert any("damaged" in problem for problem in report.problems)
    assert any("damaged" in record.message for record in caplog.records)
    assert list(layout.journal.glob(f"{ERASURES_FILE}.damaged-*"))


def test_the_copy_beside_the_backups_brings_back_a_lost_record(layout):
    make_database(layout.database)
    erase(layout)
    apply_erasures(layout)  # heals every copy: the backups' one too
    live, mirror = copies(layout)
    assert read_record(mirror).lines == read_record(live).lines
    live.unlink()  # the journal folder lost (or restored from an older disk)
    make_database(layout.database.with_name("old.db"))
    layout.database.unlink()
    layout.database.with_name("old.db").rename(layout.database)
    report = apply_erasures(layout)
    assert report.users == 1 and held(layout.database, ERASED)["users"] == 0
    assert read_record(live).entries, "the live record is rebuilt from the copy"


def test_lines_that_are_not_erasures_are_never_written_into_the_record(layout):
    update = JournalEntry(UPDATE, 3, 1.0, 5, {"update_id": 3})
    added, _ = merge_lines(layout.journal / ERASURES_FILE, [encode(update), b"junk\n"])
    assert added == 0 and not (layout.journal / ERASURES_FILE).exists()


def test_salvaged_rows_of_an_erased_user_are_erased_in_the_merge_itself(layout, tmp_path):
    make_database(layout.database)
    erase(layout)
    apply_erasures(layout)
    damaged = tmp_path / "quarantined.db"
    make_database(damaged)  # what the quarantined file still held: the user's old rows
    with sqlite3.connect(damaged) as connection:
        connection.execute("UPDATE messages SET id = id + 1000, message_id = message_id + 1")
        connection.execute("UPDATE notes SET id = id + 1000")
    entries = read_record(layout.journal / ERASURES_FILE).entries
    report = salvage_and_merge(
        damaged, None, tmp_path / "salvage.db", layout.database, then=erase_again(entries)
    )
    assert report.merged.get("users") == 1  # merged, then taken out in the same transaction
    assert report.erased.get("users") == 1 and report.erased.get("messages") == 1
    assert held(layout.database, ERASED) == dict.fromkeys(held(layout.database, KEPT), 0)
    assert held(layout.database, KEPT)["messages"] == 2  # the other user's salvaged row stays


def test_an_erasure_that_cannot_be_recorded_refuses_its_batch(tmp_path):
    writer = JournalWriter(tmp_path / "journal")
    writer.open()
    batch = BatchJournal(writer, clock=lambda: ERASED_AT)
    blocker = tmp_path / "journal" / f".{ERASURES_FILE}.tmp"
    blocker.mkdir()  # the record cannot be written (as with ENOSPC: an OSError)
    with pytest.raises(ErasureNotRecorded):
        batch.erase_user(ERASED, ERASING_UPDATE)
    with pytest.raises(ErasureNotRecorded):
        batch.flush()  # the batch holding the deleted rows must not commit
    batch.discard()  # rolled back: the next batch goes on
    batch.flush()
    blocker.rmdir()
    batch.erase_user(ERASED, ERASING_UPDATE)
    batch.flush()
    assert [e.user_id for e in read_record(tmp_path / "journal" / ERASURES_FILE).entries] == [42]
    writer.close()


def test_a_database_that_is_not_the_bots_is_reported_not_trusted(layout):
    with sqlite3.connect(layout.database) as connection:
        connection.execute("CREATE TABLE users (id INTEGER, first_seen TEXT)")
        connection.execute("INSERT INTO users VALUES (?, ?)", (ERASED, BEFORE))
        connection.execute("CREATE TRIGGER planted AFTER DELETE ON users BEGIN SELECT 1; END")
    erase(layout)
    report = apply_erasures(layout)
    assert report.users == 1  # plain tables: erased all the same, with nothing trusted
