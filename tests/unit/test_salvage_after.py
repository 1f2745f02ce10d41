"""Salvage after the bot is back (issue 14): the quarantined file is merged into a live database
the bot has already written to since the restore. Real SQLite files of the bot's schema, the
real worker process (``python -m watchdog.data.salvage_job``)."""

from __future__ import annotations

import itertools
import json
import shutil
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

from conf.erasures import record_erasure
from conf.layout import DataLayout
from conf.schema import schema_sql
from tests import dbgen
from watchdog.data import merge
from watchdog.data.backups import BackupKeeper
from watchdog.data.quarantine import list_quarantine, quarantine_database, update_note
from watchdog.data.recovery import recover
from watchdog.data.salvage_job import owed_salvages, read_damaged, salvage_entry
from watchdog.rules.recovery import SALVAGE_WAITS_AT_MOST, salvage_may_start

REPO = Path(__file__).resolve().parents[2]
AT = "2026-03-01T10:00:00.000000+00:00"
LATER = "2026-03-05T10:00:00.000000+00:00"
ERASED = 77


def _message(connection: sqlite3.Connection, chat: int, number: int, text: str) -> None:
    connection.execute(
        "INSERT INTO messages (chat_id, message_id, user_id, kind, text, sent_at, update_id) "
        "VALUES (?, ?, ?, 'text', ?, ?, ?)",
        (chat, number, chat, text, AT, number),
    )


def _user(connection: sqlite3.Connection, uid: int) -> None:
    connection.execute(
        "INSERT INTO users (id, first_name, first_seen, last_seen) VALUES (?, 'U', ?, ?)",
        (uid, AT, AT),
    )
    connection.execute(
        "INSERT INTO chats (id, type, first_seen, last_seen) VALUES (?, 'private', ?, ?)",
        (uid, AT, AT),
    )


def rows(path: Path, query: str) -> list[tuple]:
    with closing(sqlite3.connect(path)) as connection:
        return connection.execute(query).fetchall()


@pytest.fixture
def site(tmp_path: Path) -> tuple[DataLayout, set[tuple]]:
    """The backup (users 1-3, 40 messages), the file that later became damaged (the backup and
    30 more messages and a note, user 77's among them), then the backup installed and written to
    by the bot: 5 new messages (taking the ids the damaged file's rows had) and one update the
    journal's replay handled again (the same chat and message id as a row of the damaged file).
    Returns the layout and the damaged file's messages after the backup, by natural key."""
    layout = DataLayout(tmp_path / "data", tmp_path / "data" / "erixcast.db")
    layout.ensure()
    backup = tmp_path / "backup.db"
    with closing(sqlite3.connect(backup)) as connection:
        connection.executescript(schema_sql())
        for uid in (1, 2, 3, ERASED):
            _user(connection, uid)
        for number in range(1, 41):
            _message(connection, 1 + number % 3, number, f"before the backup {number}")
        connection.commit()
    shutil.copyfile(backup, layout.database)
    with closing(sqlite3.connect(layout.database)) as connection:
        for number in range(41, 71):
            chat = ERASED if number % 10 == 0 else 1 + number % 3
            _message(connection, chat, number, f"after the backup {number}")
        connection.execute(
            "INSERT INTO notes (user_id, text, created_at, source_chat_id, source_message_id) "
            "VALUES (2, 'a note after the backup', ?, 2, 44)",
            (AT,),
        )
        connection.commit()
    later = set(
        rows(
            layout.database, "SELECT chat_id, message_id, text FROM messages WHERE message_id > 40"
        )
    )
    moved = quarantine_database(layout, "test", "damaged", 1_800_000_000)
    assert moved is not None
    update_note(moved, restored_from="the-backup", source="local")
    shutil.copyfile(backup, layout.database)
    with closing(sqlite3.connect(layout.database)) as connection:
        for number in range(1000, 1005):  # the bot's own writes, after the restore
            _message(connection, 3, number, f"written by the bot after the restore {number}")
        _message(connection, 1 + 41 % 3, 41, "after the backup 41")  # replayed from the journal
        connection.execute(
            "INSERT INTO notes (user_id, text, created_at, source_chat_id, source_message_id) "
            "VALUES (3, 'a note by the bot after the restore', ?, 3, 1000)",
            (LATER,),
        )
        connection.commit()
    return layout, later


def test_rows_the_bot_wrote_after_the_restore_never_make_a_salvaged_row_lost_or_wrong(site):
    layout, later = site
    bots = rows(layout.database, "SELECT * FROM messages WHERE message_id >= 1000 ORDER BY id")
    bots_note = rows(layout.database, "SELECT * FROM notes")
    assert {row[0] for row in bots} <= set(range(41, 47)), "the bot took the damaged file's ids"
    (entry,) = owed_salvages(layout)
    report = salvage_entry(layout, entry)
    merged = set(
        rows(
            layout.database, "SELECT chat_id, message_id, text FROM messages WHERE message_id > 40"
        )
    )
    assert later <= merged, "every row of the damaged file is back, unchanged but for its id"
    assert (
        rows(layout.database, "SELECT * FROM messages WHERE message_id >= 1000 ORDER BY id") == bots
    )
    assert set(bots_note) <= set(rows(layout.database, "SELECT * FROM notes"))
    count = rows(layout.database, "SELECT count(*) FROM messages WHERE message_id = 41")
    assert count == [(1,)], "the replayed update's message is not there twice"
    assert report.merged["messages"] == 29 and report.renumbered["messages"] == 5
    assert report.merged["notes"] == 1 and report.renumbered["notes"] == 1
    ids = [row[0] for row in rows(layout.database, "SELECT id FROM messages WHERE message_id > 40")]
    assert len(ids) == len(set(ids)) and max(ids) <= 70 + 5, "renumbered once, above the rest"
    # The search index follows the new ids (the bot's triggers ran on every merged row).
    for (text,) in rows(layout.database, "SELECT text FROM messages WHERE message_id = 45"):
        found = rows(
            layout.database,
            f"SELECT m.message_id FROM messages_fts f JOIN messages m ON m.id = f.rowid "
            f"WHERE messages_fts MATCH '\"{text}\"'",
        )
        assert (45,) in found
    (note,) = list_quarantine(layout)
    assert note.note["salvage"]["status"] == "merged"
    assert note.database is not None and note.database.exists(), "the quarantine is kept"


def test_salvaged_again_merges_nothing_twice(site):
    layout, _ = site
    (entry,) = owed_salvages(layout)
    salvage_entry(layout, entry)
    before = rows(layout.database, "SELECT * FROM messages ORDER BY id")
    update_note(list_quarantine(layout)[0], salvage={"status": "pending"})  # as if killed
    (entry,) = owed_salvages(layout)
    again = salvage_entry(layout, entry)
    assert rows(layout.database, "SELECT * FROM messages ORDER BY id") == before
    assert sum(again.merged.values()) == 0


def test_an_erasure_the_bot_made_after_the_restore_holds_for_the_salvaged_rows(site):
    """User 77 erased with the bot back, before the salvage merges: none of their rows in the
    damaged file comes back, and the record is read inside every step's transaction."""
    layout, _ = site
    with closing(sqlite3.connect(layout.database)) as connection:
        for table, column in (("messages", "chat_id"), ("users", "id"), ("chats", "id")):
            connection.execute(f"DELETE FROM {table} WHERE {column} = ?", (ERASED,))
        connection.commit()
    record_erasure(layout.journal, ERASED, 5000, 1_900_000_000.0)
    (entry,) = owed_salvages(layout)
    report = salvage_entry(layout, entry)
    assert report.erased.get("messages", 0) >= 1, report
    assert rows(layout.database, f"SELECT count(*) FROM messages WHERE chat_id = {ERASED}") == [
        (0,)
    ]
    assert rows(layout.database, f"SELECT count(*) FROM users WHERE id = {ERASED}") == [(0,)]


def test_the_merge_goes_in_short_steps_each_with_the_erasures(site, monkeypatch):
    layout, _ = site
    monkeypatch.setattr(merge, "STEP_ROWS", 4)
    seen: list[int] = []

    def then(connection: sqlite3.Connection) -> dict[str, int]:
        assert connection.in_transaction
        seen.append(connection.execute("SELECT count(*) FROM messages").fetchone()[0])
        return {}

    with closing(sqlite3.connect(layout.database, isolation_level=None)) as connection:
        (entry,) = owed_salvages(layout)
        read_damaged(layout, entry)
        connection.execute("ATTACH DATABASE ? AS salvage", (str(entry.folder / "salvage.db"),))
        counts = merge.merge_rows(connection, ("users", "chats", "messages", "notes"), then)
    assert counts.steps == len(seen) >= 8
    assert all(b - a <= 4 for a, b in itertools.pairwise(seen))


def _worker(layout: DataLayout, folder: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "watchdog.data.salvage_job",
            str(layout.root),
            str(layout.database),
            str(folder),
        ],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def test_the_worker_reads_then_merges_when_told(site):
    layout, later = site
    (entry,) = owed_salvages(layout)
    worker = _worker(layout, entry.folder)
    try:
        assert worker.stdout is not None and worker.stdin is not None
        assert json.loads(worker.stdout.readline())["phase"] == "read"
        assert list_quarantine(layout)[0].note["salvage"]["status"] == "pending"
        worker.stdin.write("merge\n")
        worker.stdin.flush()
        done = json.loads(worker.stdout.readline())
        assert worker.wait(60) == 0
    finally:
        worker.kill()
        worker.wait(10)
    assert done["phase"] == "done" and done["status"] == "merged"
    assert done["merged"]["messages"] == 29
    merged = set(rows(layout.database, "SELECT chat_id, message_id, text FROM messages"))
    assert later <= merged


def test_a_worker_whose_watchdog_is_gone_stops_and_leaves_the_salvage_pending(site):
    layout, _ = site
    (entry,) = owed_salvages(layout)
    before = rows(layout.database, "SELECT * FROM messages ORDER BY id")
    worker = _worker(layout, entry.folder)
    try:
        assert worker.stdout is not None and worker.stdin is not None
        assert json.loads(worker.stdout.readline())["phase"] == "read"
        worker.stdin.close()  # what the watchdog's death does
        assert worker.wait(60) == 3
    finally:
        worker.kill()
        worker.wait(10)
    assert rows(layout.database, "SELECT * FROM messages ORDER BY id") == before
    (kept,) = owed_salvages(layout)
    assert kept.database is not None and kept.database.exists()


def test_recovery_installs_and_leaves_the_salvage_pending_for_after_the_launch(tmp_path):
    """``recover`` no longer salvages before it returns (the bot's launch waits for it): the
    note and the result say pending, and the rows only the damaged file holds come back with
    the salvage that runs after."""
    layout = DataLayout(tmp_path / "data", tmp_path / "data" / "erixcast.db")
    layout.ensure()
    dbgen.create_bot(layout.database, 300_000)
    keeper = BackupKeeper(layout, {"hourly": 5}, 0, "t")
    backup = keeper.take("hourly", "test", 1_800_000_000.0).backup
    assert backup is not None
    with closing(sqlite3.connect(layout.database)) as connection:
        _message(connection, 999_999, 1, "only in the damaged file")
        connection.commit()
    result = recover(layout, "test", "damaged", 1_800_000_100.0)
    assert result.restored_from is not None and result.salvage == {"status": "pending"}
    assert "salvage runs with the bot back" in result.summary()
    assert result.rows == backup.manifest.rows, "the bot is not held for a count of the file"
    query = "SELECT count(*) FROM messages WHERE chat_id = 999999"
    assert rows(layout.database, query) == [(0,)], "not merged before the launch"
    (entry,) = owed_salvages(layout)
    assert entry.note["restored_from"] == result.restored_from
    salvage_entry(layout, entry)
    assert rows(layout.database, query) == [(1,)]


def test_the_salvage_waits_for_the_bot_to_answer_but_not_forever():
    assert salvage_may_start("running", 0.0)
    assert salvage_may_start("not_configured", 0.0)
    for phase in ("held", "starting", "backoff", "stopping"):
        assert not salvage_may_start(phase, 1.0), phase  # the bot's start-up goes first
        assert salvage_may_start(phase, SALVAGE_WAITS_AT_MOST)
