"""The split integrity check (``watchdog.data.integrity``) against SQLite 3.40's own whole
check, on real files with real damage, in real worker processes.

For each damage: the whole ``PRAGMA integrity_check`` fails (the damage is real), the split
check fails too; and where the damage is one only the whole check sees (the free-list, the page
accounting), every per-table ``integrity_check(T)`` passes, so the split check's own pass is
what catches it."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import struct
from pathlib import Path

import pytest

from tests import dbgen
from watchdog.data import checker
from watchdog.data.integrity import (
    CACHE_KIB,
    CHECK_NICE,
    Abandoned,
    Checkers,
    Integrity,
    _Worker,
    check_integrity,
)

PAGE = 4096


def _build(path: Path) -> None:
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
    connection.execute("CREATE TABLE messages (id INTEGER PRIMARY KEY, user_id INT, body TEXT)")
    connection.execute("CREATE INDEX ix_messages ON messages (user_id, body)")
    connection.executemany("INSERT INTO users (name) VALUES (?)", [(f"u{i}",) for i in range(50)])
    connection.executemany(
        "INSERT INTO messages (user_id, body) VALUES (?, ?)",
        [(i % 50, f"message {i} " * 20) for i in range(4000)],
    )
    connection.commit()
    connection.execute("DELETE FROM messages WHERE id > 3000")  # a free-list of some pages
    connection.commit()
    connection.close()


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("integrity") / "pristine.db"
    _build(path)
    return path


def _open(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)


def _pages(path: Path, tree: str, kind: str) -> list[int]:
    connection = _open(path)
    try:
        rows = connection.execute(
            "SELECT pageno FROM dbstat WHERE name = ? AND pagetype = ?", (tree, kind)
        ).fetchall()
    finally:
        connection.close()
    return [int(row[0]) for row in rows]


def _whole(path: Path) -> list[str]:
    connection = _open(path)
    try:
        return [str(row[0]) for row in connection.execute("PRAGMA integrity_check")]
    except sqlite3.DatabaseError as error:
        return [str(error)]
    finally:
        connection.close()


def _per_table(path: Path) -> dict[str, list[str]]:
    connection = _open(path)
    try:
        names = ["sqlite_schema"] + [
            str(row[0])
            for row in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND rootpage > 0"
            )
        ]
        return {
            name: [str(row[0]) for row in connection.execute(f'PRAGMA integrity_check("{name}")')]
            for name in names
        }
    finally:
        connection.close()


def _damaged(pristine: Path, tmp_path: Path, change) -> Path:
    path = tmp_path / "damaged.db"
    shutil.copyfile(pristine, path)
    data = bytearray(path.read_bytes())
    change(data)
    path.write_bytes(bytes(data))
    assert _whole(path) != ["ok"], "the damage must be real: the whole check sees it"
    return path


def _scribble(page: int):
    def change(data: bytearray) -> None:
        start = (page - 1) * PAGE
        data[start + 8 : start + 200] = bytes(range(192))

    return change


def _freelist_head(data: bytes) -> tuple[int, int, int]:
    first, count = struct.unpack_from(">II", data, 32)
    leaves = struct.unpack_from(">I", data, (first - 1) * PAGE + 4)[0]
    return first, count, leaves


def test_a_sound_file_passes_split_in_several_jobs(pristine):
    verdict = check_integrity(pristine, frozen=True, workers=2)
    assert verdict.ok, verdict.summary()
    assert verdict.jobs == 5  # the plan, the page accounting, sqlite_schema, users, messages


def test_a_damaged_index_page_is_caught(pristine, tmp_path):
    page = _pages(pristine, "ix_messages", "leaf")[3]
    path = _damaged(pristine, tmp_path, _scribble(page))
    verdict = check_integrity(path, frozen=True, workers=2)
    assert not verdict.ok
    assert f"page {page}" in verdict.summary()


def test_a_damaged_table_page_is_caught(pristine, tmp_path):
    page = _pages(pristine, "messages", "leaf")[5]
    path = _damaged(pristine, tmp_path, _scribble(page))
    verdict = check_integrity(path, frozen=True, workers=2)
    assert not verdict.ok
    assert f"page {page}" in verdict.summary()


def test_a_page_lost_from_the_freelist_is_caught_though_every_table_passes(pristine, tmp_path):
    def lose_last_leaf(data: bytearray) -> None:
        first, count, leaves = _freelist_head(data)
        struct.pack_into(">I", data, (first - 1) * PAGE + 4, leaves - 1)
        struct.pack_into(">I", data, 36, count - 1)

    path = _damaged(pristine, tmp_path, lose_last_leaf)
    assert all(result == ["ok"] for result in _per_table(path).values())
    verdict = check_integrity(path, frozen=True, workers=2)
    assert not verdict.ok
    assert "is never used" in verdict.summary()


def test_a_freelist_page_that_a_table_uses_is_caught_though_every_table_passes(pristine, tmp_path):
    used = _pages(pristine, "messages", "leaf")[0]

    def point_at_a_table_page(data: bytearray) -> None:
        first, _, _ = _freelist_head(data)
        struct.pack_into(">I", data, (first - 1) * PAGE + 8, used)

    path = _damaged(pristine, tmp_path, point_at_a_table_page)
    assert all(result == ["ok"] for result in _per_table(path).values())
    verdict = check_integrity(path, frozen=True, workers=2)
    assert not verdict.ok
    assert f"2nd reference to page {used}" in verdict.summary()


def test_a_wrong_freelist_count_is_caught(pristine, tmp_path):
    def miscount(data: bytearray) -> None:
        struct.pack_into(">I", data, 36, _freelist_head(data)[1] + 3)

    path = _damaged(pristine, tmp_path, miscount)
    verdict = check_integrity(path, frozen=True, workers=2)
    assert not verdict.ok
    assert "freelist" in verdict.summary().lower()


def test_the_bots_own_schema_fts_tables_included(tmp_path):
    path = tmp_path / "bot.db"
    dbgen.create_bot(path, 2 * 1024 * 1024)
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.execute("PRAGMA journal_mode=DELETE")
    connection.close()
    assert check_integrity(path, frozen=True, workers=2).ok
    page = _pages(path, "messages_fts_data", "leaf")[0]
    damaged = _damaged(path, tmp_path, _scribble(page))
    assert not check_integrity(damaged, frozen=True, workers=2).ok


def test_a_split_check_is_one_worker_process_whose_threads_run_the_jobs(pristine, tmp_path):
    """One interpreter per check, not one per share: the stack's memory counts every process."""
    checkers = Checkers(pristine, True, 2)
    try:
        assert len(checkers.pool) == 1
        worker = checkers.pool[0]
        assert isinstance(worker, _Worker)
        worker.send("plan")
        answer = json.loads(worker.stream.readline())
    finally:
        checkers.stop()
    assert answer["problems"] == [] and "error" not in answer
    assert answer["done"] == 5  # the plan, the page accounting, sqlite_schema, users, messages
    assert answer["idle"] is hasattr(os, "SCHED_IDLE")
    page = _pages(pristine, "ix_messages", "leaf")[3]
    damaged = check_integrity(_damaged(pristine, tmp_path, _scribble(page)), frozen=True)
    assert not damaged.ok and damaged.problems, "a share's finding reaches the verdict"


def test_a_live_file_gets_the_whole_check_in_one_worker(pristine, tmp_path):
    assert check_integrity(pristine, frozen=False).jobs == 1
    page = _pages(pristine, "ix_messages", "leaf")[3]
    path = _damaged(pristine, tmp_path, _scribble(page))
    assert not check_integrity(path, frozen=False).ok
    assert not check_integrity(path, frozen=False, quick=True).ok


def test_only_the_full_check_of_an_indexed_table_gets_the_big_page_cache(pristine):
    connection = checker._open(str(pristine), True, CACHE_KIB)

    def cache_after(job: str) -> int:
        assert checker._answer(connection, str(pristine), job, CACHE_KIB)["problems"] == []
        return -int(connection.execute("PRAGMA cache_size").fetchone()[0])

    try:
        assert cache_after("table messages") == CACHE_KIB  # its index is looked up at every row
        assert cache_after("account") == checker.SMALL_CACHE_KIB
        assert cache_after("table users") == checker.SMALL_CACHE_KIB
        assert cache_after("table messages") == CACHE_KIB
        assert cache_after("quick messages") == checker.SMALL_CACHE_KIB  # no look-ups
    finally:
        connection.close()


def test_workers_run_at_low_priority(pristine):
    worker = _Worker(pristine, True)
    try:
        worker.send("table users")
        assert worker.process.stdout is not None
        answer = worker.process.stdout.readline()
    finally:
        worker.stop()
    reported = json.loads(answer)
    assert reported["nice"] >= CHECK_NICE
    assert reported["idle"] is hasattr(os, "SCHED_IDLE"), (
        "the idle scheduling class where it exists"
    )


def test_a_check_told_to_stop_stops(pristine):
    with pytest.raises(Abandoned):
        check_integrity(pristine, frozen=True, proceed=lambda: False)


def test_not_a_database(tmp_path):
    path = tmp_path / "garbage.db"
    path.write_bytes(b"not a database" * 1000)
    verdict = check_integrity(path, frozen=True)
    assert not verdict.ok
    assert not verdict.inconclusive


# -- an index no longer what its table holds (every page in its place) -----------------------


def _rewritten(path: Path, *statements: str) -> None:
    """The schema changed under the data (``writable_schema``): an index no longer what the
    table holds, every page still in its place."""
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA writable_schema=ON")
    for statement in statements:
        connection.execute(statement)
    connection.commit()
    connection.close()


def _two_tables(path: Path, extra_row: bool = False, unique: str = "") -> None:
    connection = sqlite3.connect(path)
    for table in ("t", "t2"):
        connection.execute(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, a TEXT, b INT)")
        connection.execute(f"CREATE {unique} INDEX ix_{table} ON {table} (a COLLATE NOCASE, b)")
    rows = [(f"name {i}", i % 7) for i in range(300)]
    connection.executemany("INSERT INTO t (a, b) VALUES (?, ?)", rows)
    connection.executemany("INSERT INTO t2 (a, b) VALUES (?, ?)", rows + [("extra", 1)] * extra_row)
    connection.commit()
    connection.close()


def _both_verdicts(path: Path) -> tuple[list[str], Integrity]:
    return _whole(path), check_integrity(path, frozen=True, workers=2)


def test_rows_missing_from_an_index_are_caught(tmp_path):
    path = tmp_path / "missing.db"
    _two_tables(path)
    _rewritten(
        path, "UPDATE sqlite_master SET sql = 'CREATE INDEX ix_t ON t (b, a)' WHERE name = 'ix_t'"
    )
    whole, split = _both_verdicts(path)
    assert any("missing from index ix_t" in line for line in whole)
    assert not split.ok
    assert any("missing from index ix_t" in line for line in split.problems), split.problems


def test_an_index_with_more_entries_than_rows_is_caught(tmp_path):
    path = tmp_path / "extra.db"
    _two_tables(path)
    sql = "CREATE INDEX ix_t ON t (a COLLATE NOCASE, b)"
    _rewritten(path, "CREATE TABLE dummy (id INTEGER PRIMARY KEY, a TEXT, b INT)")
    _rewritten(  # the index is the empty dummy's while a row of t goes: its entry stays
        path,
        "UPDATE sqlite_master SET tbl_name = 'dummy', "
        f"sql = '{sql.replace(' t ', ' dummy ')}' WHERE name = 'ix_t'",
    )
    _rewritten(path, "DELETE FROM t WHERE id = 7")
    _rewritten(path, f"UPDATE sqlite_master SET tbl_name = 't', sql = '{sql}' WHERE name = 'ix_t'")
    whole, split = _both_verdicts(path)
    assert whole == ["wrong # of entries in index ix_t"]
    assert split.problems == ["wrong # of entries in index ix_t"]


def test_a_unique_index_holding_one_key_twice_is_caught(tmp_path):
    path = tmp_path / "twice.db"
    _two_tables(path, extra_row=True)
    _rewritten(
        path,
        "INSERT INTO t2 (a, b) VALUES ('Extra', 1)",  # the same key, as NOCASE compares
        "UPDATE sqlite_master SET sql = 'CREATE UNIQUE INDEX ix_t2 ON t2 (a COLLATE NOCASE, b)' "
        "WHERE name = 'ix_t2'",
    )
    whole, split = _both_verdicts(path)
    assert "non-unique entry in index ix_t2" in whole
    assert "non-unique entry in index ix_t2" in split.problems, split.problems
