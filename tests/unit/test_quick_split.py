"""The start-up ``quick_check`` split by table (``quick_check(T)`` per table plus the page
accounting), against SQLite 3.40's own whole ``quick_check``, on real files with real damage, in
real worker processes: for each damage the whole quick check fails (the damage is one it sees),
and so does the split one; where only the whole check's free-list and page accounting see it,
every per-table ``quick_check(T)`` passes, so the accounting is what catches it. And the live
file is split only while it is still with every commit in its main file."""

from __future__ import annotations

import sqlite3
import struct
from contextlib import closing
from pathlib import Path

import pytest

from tests import dbgen
from tests.unit.test_integrity import PAGE, _build, _freelist_head, _open, _pages, _scribble
from watchdog.data.database import check_database
from watchdog.data.integrity import check_integrity


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("quick") / "pristine.db"
    _build(path)
    return path


def _whole_quick(path: Path) -> list[str]:
    with closing(_open(path)) as connection:
        try:
            return [str(row[0]) for row in connection.execute("PRAGMA quick_check")]
        except sqlite3.DatabaseError as error:
            return [str(error)]


def _per_table_quick(path: Path) -> dict[str, list[str]]:
    with closing(_open(path)) as connection:
        names = ["sqlite_schema"] + [
            str(row[0])
            for row in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND rootpage > 0"
            )
        ]
        return {
            name: [str(row[0]) for row in connection.execute(f'PRAGMA quick_check("{name}")')]
            for name in names
        }


def _damaged(pristine: Path, tmp_path: Path, change) -> Path:
    path = tmp_path / "damaged.db"
    data = bytearray(pristine.read_bytes())
    change(data)
    path.write_bytes(bytes(data))
    assert _whole_quick(path) != ["ok"], "the damage must be one the whole quick_check sees"
    return path


def _lose_last_free_leaf(data: bytearray) -> None:
    first, count, leaves = _freelist_head(data)
    struct.pack_into(">I", data, (first - 1) * PAGE + 4, leaves - 1)
    struct.pack_into(">I", data, 36, count - 1)


def _miscount_the_freelist(data: bytearray) -> None:
    struct.pack_into(">I", data, 36, _freelist_head(data)[1] + 3)


def test_a_sound_file_passes_the_split_quick_check_in_several_jobs(pristine):
    verdict = check_integrity(pristine, frozen=True, quick=True, workers=2)
    assert verdict.ok, verdict.summary()
    assert verdict.jobs == 5  # the plan, the page accounting, sqlite_schema, users, messages


@pytest.mark.parametrize(
    ("tree", "kind", "index"), [("ix_messages", "leaf", 3), ("messages", "leaf", 5)]
)
def test_a_damaged_page_is_caught_by_the_split_quick_check(pristine, tmp_path, tree, kind, index):
    page = _pages(pristine, tree, kind)[index]
    path = _damaged(pristine, tmp_path, _scribble(page))
    verdict = check_integrity(path, frozen=True, quick=True, workers=2)
    assert not verdict.ok
    assert f"page {page}" in verdict.summary()


def test_a_page_lost_from_the_freelist_is_caught_though_every_table_passes(pristine, tmp_path):
    path = _damaged(pristine, tmp_path, _lose_last_free_leaf)
    assert all(result == ["ok"] for result in _per_table_quick(path).values())
    verdict = check_integrity(path, frozen=True, quick=True, workers=2)
    assert "is never used" in verdict.summary()


def test_a_freelist_page_a_table_uses_is_caught_though_every_table_passes(pristine, tmp_path):
    used = _pages(pristine, "messages", "leaf")[0]

    def point_at_a_table_page(data: bytearray) -> None:
        first, _, _ = _freelist_head(data)
        struct.pack_into(">I", data, (first - 1) * PAGE + 8, used)

    path = _damaged(pristine, tmp_path, point_at_a_table_page)
    assert all(result == ["ok"] for result in _per_table_quick(path).values())
    verdict = check_integrity(path, frozen=True, quick=True, workers=2)
    assert f"2nd reference to page {used}" in verdict.summary()


def test_a_wrong_freelist_count_is_caught(pristine, tmp_path):
    path = _damaged(pristine, tmp_path, _miscount_the_freelist)
    verdict = check_integrity(path, frozen=True, quick=True, workers=2)
    assert "freelist" in verdict.summary().lower()


def _bot_database(path: Path) -> Path:
    dbgen.create_bot(path, 600_000)
    with closing(sqlite3.connect(path)) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


def test_a_still_quiet_file_is_split_and_its_rows_left_to_the_full_check(tmp_path):
    path = _bot_database(tmp_path / "bot.db")
    result = check_database(path, quick=True, still=True)
    assert result.ok, result.detail
    assert result.tables == {} and result.names is not None
    assert result.table_names == set(check_database(path).tables)
    damaged = tmp_path / "damaged.db"
    data = bytearray(path.read_bytes())
    page = _pages(path, "messages", "leaf")[0]
    _scribble(page)(data)
    damaged.write_bytes(bytes(data))
    verdict = check_database(damaged, quick=True, still=True)
    assert verdict.state == "corrupt" and f"page {page}" in verdict.detail


def test_a_file_with_commits_in_its_wal_gets_the_whole_quick_check_and_its_counts(tmp_path):
    path = _bot_database(tmp_path / "bot.db")
    with closing(sqlite3.connect(path)) as writer:
        writer.execute("PRAGMA wal_autocheckpoint=0")
        writer.execute(
            "INSERT INTO users (id, first_name, first_seen, last_seen) "
            "VALUES (999999, 'x', '2026-01-01', '2026-01-01')"
        )
        writer.commit()
        assert Path(f"{path}-wal").stat().st_size > 0
        result = check_database(path, quick=True, still=True)
    assert result.ok, result.detail
    assert result.names is None and result.tables["users"] >= 1


def test_with_one_worker_to_spare_the_still_file_gets_the_whole_quick_check(tmp_path):
    path = _bot_database(tmp_path / "bot.db")
    result = check_database(path, quick=True, still=True, workers=1)
    assert result.ok, result.detail
    assert result.names is None and set(result.tables) == result.table_names
