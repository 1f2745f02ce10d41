"""The SQLite file format read directly (watchdog.data.pages, btree, shapes): checked against what
SQLite itself says of real files — every record of a bot database decoded as SQLite reads it,
the -wal's committed frames applied, the free-list, b-tree walks equal to ``dbstat``'s, deleted
cells never read, and which table a page's rows fit."""

from __future__ import annotations

import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from tests import dbgen
from watchdog.data import btree, pagescan
from watchdog.data.pages import PageImage, decode_record, read_wal
from watchdog.data.shapes import Shape, affinity, shapes_of

PAGE = 4096


def leaves_of(path: Path, table: str) -> list[int]:
    """The table's leaf pages in key order, as SQLite's ``dbstat`` lists them."""
    with closing(sqlite3.connect(path)) as connection:
        query = "SELECT pageno FROM dbstat WHERE name = ? AND pagetype = 'leaf' ORDER BY path"
        return [row[0] for row in connection.execute(query, (table,))]


def root_of(path: Path, table: str) -> int:
    with closing(sqlite3.connect(path)) as connection:
        query = "SELECT rootpage FROM sqlite_master WHERE name = ?"
        return int(connection.execute(query, (table,)).fetchone()[0])


def zero_page(path: Path, number: int) -> None:
    with path.open("r+b") as handle:
        handle.seek((number - 1) * PAGE)
        handle.write(bytes(PAGE))


@pytest.fixture(scope="module")
def bot_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bot database (thousands of messages) with every kind of value: NULLs, negative and
    8-byte integers, a row far longer than a page (overflow), a blob in the FTS tables."""
    path = tmp_path_factory.mktemp("pages") / "bot.db"
    dbgen.create_bot(path, 1_500_000)
    with closing(sqlite3.connect(path)) as connection:
        connection.execute(
            "INSERT INTO notes (user_id, text, created_at, source_chat_id) VALUES (?, ?, ?, ?)",
            (-(2**40), "long note " * 3000, "2026-12-01", -1001234567890),
        )
        connection.execute(
            "INSERT INTO chats (id, type, title, first_seen, last_seen) VALUES (?, ?, ?, ?, ?)",
            (-(2**62), "supergroup", "Ünïcødé 東京 🙂", "a", "b"),
        )
        connection.commit()
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


def test_every_record_reads_as_sqlite_reads_it(bot_db: Path) -> None:
    with closing(sqlite3.connect(bot_db)) as connection, PageImage(bot_db) as image:
        for table in ("users", "chats", "messages", "notes", "processed_updates"):
            expected = connection.execute(f"SELECT rowid, * FROM {table} ORDER BY rowid").fetchall()
            shape = shapes_of(connection)[table]
            walk = btree.walk_table(image, root_of(bot_db, table))
            assert walk.complete and walk.leaves == leaves_of(bot_db, table)
            found = [
                shape.row(cell.rowid, decode_record(cell.payload))  # type: ignore[arg-type]
                for number in walk.leaves
                for cell in btree.leaf_cells(image, number) or []
                if cell is not None
            ]
            assert found == expected, table


def test_an_overflowing_row_is_followed_through_its_chain(bot_db: Path) -> None:
    with PageImage(bot_db) as image:
        (leaf,) = btree.walk_table(image, root_of(bot_db, "notes")).leaves
        (cell,) = btree.leaf_cells(image, leaf) or []
        assert cell is not None and len(cell.overflow) >= 7
        values = decode_record(cell.payload or b"")
        assert values is not None and values[2] == "long note " * 3000
        # The chain's pages are never followed into a page the caller rules out.
        (cut,) = btree.leaf_cells(image, leaf, avoid=frozenset(cell.overflow[3:4])) or []
        assert cut is not None and cut.payload is None


def test_the_wal_view_is_what_sqlite_sees(tmp_path: Path, bot_db: Path) -> None:
    path = tmp_path / "live.db"
    shutil.copyfile(bot_db, path)
    writer = sqlite3.connect(path)
    writer.execute("PRAGMA wal_autocheckpoint=0")
    writer.execute("DELETE FROM messages WHERE id <= 3000")
    writer.execute(
        "INSERT INTO messages (chat_id, message_id, kind, text, sent_at) VALUES (1, -1, 't', ?, 'x')",
        ("only in the -wal",),
    )
    writer.commit()
    wal = Path(f"{path}-wal")
    assert read_wal(wal) is not None
    copy, copy_wal = tmp_path / "copy.db", tmp_path / "copy.db-wal"
    shutil.copyfile(path, copy)
    shutil.copyfile(wal, copy_wal)
    expected = {row[0] for row in writer.execute("SELECT id FROM messages")}
    freed = writer.execute("PRAGMA freelist_count").fetchone()[0]
    writer.close()

    def ids(image: PageImage) -> set[int]:
        walk = btree.walk_table(image, root_of(bot_db, "messages"))
        return {c.rowid for n in walk.leaves for c in btree.leaf_cells(image, n) or [] if c}

    with PageImage(copy, copy_wal) as image:
        assert image.with_wal and ids(image) == expected
        free = btree.read_freelist(image)
        assert free.trusted and len(free.pages) == freed > 0
    with PageImage(copy) as main_only:  # the main file alone still holds the deleted rows
        assert set(range(1, 3001)) <= ids(main_only)


def test_a_torn_or_foreign_wal_is_not_applied(tmp_path: Path) -> None:
    wal = tmp_path / "x.db-wal"
    wal.write_bytes(b"\x37\x7f\x06\x82" + bytes(28))  # the magic, a wrong header checksum
    assert read_wal(wal) is None
    wal.write_bytes(b"")
    assert read_wal(wal) is None


def test_freelist_and_a_lost_header(tmp_path: Path, bot_db: Path) -> None:
    path = tmp_path / "freed.db"
    shutil.copyfile(bot_db, path)
    with closing(sqlite3.connect(path)) as connection:
        connection.execute("DELETE FROM messages WHERE id % 3 = 0 OR id BETWEEN 2000 AND 4000")
        connection.commit()
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        count = connection.execute("PRAGMA freelist_count").fetchone()[0]
    with PageImage(path) as image:
        free = btree.read_freelist(image)
    assert free.trusted and len(free.pages) == count > 10
    zero_page(path, 1)
    with PageImage(path, page_size_hint=PAGE) as image:
        assert not image.header.intact and image.page_size == PAGE
        lost = btree.read_freelist(image)
        assert not lost.trusted and not lost.pages
        claimed = set(btree.walk_table(image, root_of(bot_db, "messages")).pages)
        assert free.pages <= btree.find_freelist(image, claimed)


def test_a_walk_is_incomplete_below_a_damaged_page(tmp_path: Path, bot_db: Path) -> None:
    path = tmp_path / "hole.db"
    shutil.copyfile(bot_db, path)
    leaves = leaves_of(bot_db, "messages")
    zero_page(path, leaves[10])
    with PageImage(path) as image:
        walk = btree.walk_table(image, root_of(bot_db, "messages"))
    assert not walk.complete and walk.leaves == leaves[:10] + leaves[11:]


def test_a_deleted_cell_is_never_read(tmp_path: Path, bot_db: Path) -> None:
    path = tmp_path / "deleted.db"
    shutil.copyfile(bot_db, path)
    with closing(sqlite3.connect(path)) as connection:
        connection.execute("PRAGMA secure_delete=OFF")
        connection.execute("UPDATE messages SET text = 'GONE-GONE-GONE-GONE' WHERE id = 500")
        connection.commit()
        connection.execute("DELETE FROM messages WHERE id = 500")
        connection.commit()
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert b"GONE-GONE-GONE-GONE" in path.read_bytes()  # its bytes are still in the file
    with PageImage(path) as image:
        walk = btree.walk_table(image, root_of(bot_db, "messages"))
        cells = [c for n in walk.leaves for c in btree.leaf_cells(image, n) or [] if c]
    assert 500 not in {c.rowid for c in cells}
    assert not any(b"GONE-GONE" in (c.payload or b"") for c in cells)


def test_affinity_follows_sqlite() -> None:
    assert [affinity(t) for t in ("BIGINT", "INT", "VARCHAR(8)", "", "BLOB", "DOUBLE", "DATE")] == [
        "INTEGER",
        "INTEGER",
        "TEXT",
        "BLOB",
        "BLOB",
        "REAL",
        "NUMERIC",
    ]


def shapes_for(*ddl: str) -> dict[str, Shape]:
    with closing(sqlite3.connect(":memory:")) as connection:
        for statement in ddl:
            connection.execute(statement)
        return {k: v for k, v in shapes_of(connection).items() if k != "sqlite_schema"}


def test_attribute_never_guesses_between_two_tables() -> None:
    shapes = shapes_for(
        "CREATE TABLE c (x INTEGER NOT NULL, y TEXT)",
        "CREATE TABLE d (x INTEGER, y TEXT NOT NULL)",
        "CREATE TABLE e (id INTEGER PRIMARY KEY, y TEXT NOT NULL)",
    )

    def nobody(common: set[str]) -> str | None:
        return None

    both = [(1, "a"), (2, "b")]
    assert pagescan.attribute(both, shapes, nobody) is None  # fits c and d: not settled
    assert pagescan.attribute(both, shapes, lambda common: "d") == "d"
    assert pagescan.attribute([*both, (3, None)], shapes, nobody) == "c"  # y NULL: only c
    assert pagescan.attribute([*both, (None, "z")], shapes, nobody) == "d"  # x NULL: only d
    assert pagescan.attribute([(3, None), (None, "z")], shapes, nobody) is None  # c, yet d or e
    assert pagescan.attribute([(None, "z"), (None, "y")], shapes, nobody) is None  # d or e
    assert pagescan.attribute([(1.5, "z"), ("x", 2)], shapes, nobody) is None  # no type fits


def test_page_owners_without_dbstat_equal_dbstat(bot_db: Path, monkeypatch) -> None:
    ref = pagescan.reference(bot_db)
    with_dbstat = ref.owners()
    assert set(with_dbstat.values()) >= {"users", "messages", "processed_updates"}

    real_connect = pagescan.connect

    def no_dbstat(path: Path, mode: str = "ro", **kwargs: object) -> sqlite3.Connection:
        connection = real_connect(path, mode, **kwargs)  # type: ignore[arg-type]

        def deny(action: int, table: str | None, *rest: object) -> int:
            return sqlite3.SQLITE_DENY if table == "dbstat" else sqlite3.SQLITE_OK

        connection.set_authorizer(deny)
        return connection

    monkeypatch.setattr(pagescan, "connect", no_dbstat)
    walked = pagescan.page_owners(bot_db, ref.roots, set(ref.shapes))
    assert walked == with_dbstat
