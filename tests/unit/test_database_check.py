import sqlite3

import pytest

from watchdog.data.database import check_database


@pytest.fixture
def database(tmp_path):
    path = tmp_path / "erixcast.db"
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
    connection.execute("CREATE TABLE messages (id INTEGER PRIMARY KEY, body TEXT)")
    connection.execute("CREATE INDEX messages_body ON messages(body)")
    connection.executemany("INSERT INTO users (name) VALUES (?)", [(f"u{i}",) for i in range(5)])
    connection.executemany(
        "INSERT INTO messages (body) VALUES (?)", [(f"message {i} " * 20,) for i in range(2000)]
    )
    connection.commit()
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()
    return path


def test_a_good_database_is_ok_with_row_counts(database):
    result = check_database(database)
    assert result.ok
    assert result.tables == {"messages": 2000, "users": 5}
    assert result.size_bytes == database.stat().st_size


def test_missing(tmp_path):
    path = tmp_path / "none.db"
    assert check_database(path).state == "missing"
    assert not path.exists(), "a check must never create the database"


def test_zero_length(tmp_path):
    import os

    path = tmp_path / "empty.db"
    path.touch()
    os.utime(path, (1_000_000, 1_000_000))
    result = check_database(path)
    assert result.state == "corrupt"
    assert "empty" in result.detail


def test_garbage_header(database):
    with database.open("r+b") as handle:
        handle.write(b"this is not sqlite at all")
    result = check_database(database)
    assert result.state == "corrupt"
    assert "header" in result.detail


def test_damaged_pages_fail_integrity_check(database):
    page_size = 4096
    data = bytearray(database.read_bytes())
    pages = len(data) // page_size
    assert pages > 10
    for page in range(pages // 2, pages // 2 + 3):
        start = page * page_size
        data[start + 8 : start + 200] = bytes(range(192))
    database.write_bytes(bytes(data))
    result = check_database(database)
    assert result.state == "corrupt"
    assert result.detail


def test_truncated_file(database):
    data = database.read_bytes()
    database.write_bytes(data[: len(data) // 2])
    assert check_database(database).state == "corrupt"


def test_a_locked_database_is_not_called_corrupt(tmp_path):
    path = tmp_path / "locked.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("INSERT INTO t VALUES (1)")
    try:
        import watchdog.data.database as database

        original = database.connect_read_only
        database.connect_read_only = lambda p, timeout=5.0: original(p, timeout=0.1)
        try:
            result = check_database(path)
        finally:
            database.connect_read_only = original
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert result.state == "unknown"
    assert "locked" in result.detail


def test_an_empty_file_being_created_is_missing_not_corrupt(tmp_path):
    import os
    import time

    path = tmp_path / "new.db"
    path.touch()
    assert check_database(path).state == "missing"
    old = time.time() - 60
    os.utime(path, (old, old))
    assert check_database(path).state == "corrupt"
