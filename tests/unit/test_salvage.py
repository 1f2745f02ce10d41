"""Salvage and merge against a backup, on real files: a bot database with thousands of messages, a
backup copy of it, rows written after the backup, then a page-level fault — and what comes back.

Which rows sat on which page comes from SQLite (``dbstat`` lists a table's leaf pages in key
order with their cell counts), so "every row on an intact leaf page comes back" is checked
against the undamaged file, row by row. Erased users are erased with ``secure_delete`` off (the
bot does not set it; Debian's build defaults it on, others do not), so their old rows really are
still in the damaged file, which each test checks before it checks they stay out.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import dbgen
from watchdog.data.rowscan import ScanCounts, scan_rows
from watchdog.data.salvage import SalvageReport, salvage_and_merge

PAGE = 4096
TABLES = ("users", "chats", "messages", "notes", "processed_updates")
AFTER = 1500  # messages written after the backup
ERASED, KEPT = 777_001, 777_002  # users who joined after the backup; one erases themself
NO_MESSAGE = 7 + 400
"""Processed updates written after the backup whose message is not in the file: 7 that never
had one (a button press), 400 of the erased user (/deleteme keeps the update ids)."""


@dataclass
class Site:
    live: Path  # the database at the moment of the fault (undamaged)
    wal: Path | None
    backup: Path

    def connect(self) -> sqlite3.Connection:
        return sqlite3.connect(f"file:{self.live}?mode=ro", uri=True)


def user_rows(connection: sqlite3.Connection, uid: int, count: int, marker: str) -> None:
    """A user with ``count`` messages (each with its processed update), a note and a chat."""
    connection.execute(
        "INSERT INTO users (id, first_name, first_seen, last_seen, message_count) "
        "VALUES (?, ?, 'a', 'b', ?)",
        (uid, marker, count),
    )
    connection.execute(
        "INSERT INTO chats (id, type, first_seen, last_seen) VALUES (?, 'private', 'a', 'b')",
        (uid,),
    )
    connection.executemany(
        "INSERT INTO messages (chat_id, message_id, user_id, kind, text, sent_at, update_id) "
        "VALUES (?, ?, ?, 'text', ?, '2026-12-01', ?)",
        [(uid, i, uid, f"{marker} {i} " * 8, uid * 1000 + i) for i in range(count)],
    )
    connection.executemany(
        "INSERT INTO processed_updates VALUES (?, '2026-12-01')",
        [(uid * 1000 + i,) for i in range(count)],
    )
    connection.execute(
        "INSERT INTO notes (user_id, text, created_at, source_chat_id, source_message_id) "
        "VALUES (?, ?, 'x', ?, 1)",
        (uid, f"{marker} note", uid),
    )


def erase(connection: sqlite3.Connection, uid: int) -> None:
    """What the bot's /deleteme does (bot/storage/account.py)."""
    connection.execute("DELETE FROM messages WHERE user_id = ? OR chat_id = ?", (uid, uid))
    connection.execute("DELETE FROM notes WHERE user_id = ?", (uid,))
    connection.execute("DELETE FROM users WHERE id = ?", (uid,))
    connection.execute("DELETE FROM chats WHERE id = ?", (uid,))


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The bot database (about 8,000 messages) and its backup: made once, copied by each test."""
    folder = tmp_path_factory.mktemp("salvage")
    live, backup = folder / "live.db", folder / "backup.db"
    dbgen.create_bot(live, 2_000_000)
    with closing(sqlite3.connect(live)) as connection:
        connection.execute("UPDATE messages SET update_id = 10000000 + id")
        connection.execute(
            "INSERT INTO processed_updates SELECT update_id, '2026-11-30' FROM messages"
        )
        connection.commit()
        with closing(sqlite3.connect(backup)) as copy:
            connection.backup(copy)
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return live, backup


def make_site(template: tuple[Path, Path], folder: Path, erase_in_wal: bool = False) -> Site:
    """After the backup: AFTER messages of existing users (with their processed updates), two new
    users, processed updates of updates that left no message (a callback), and one of the new
    users erased — checkpointed, or with ``erase_in_wal`` only in the ``-wal``."""
    live, backup = folder / "live.db", folder / "backup.db"
    folder.mkdir(exist_ok=True)
    shutil.copyfile(template[0], live)
    shutil.copyfile(template[1], backup)
    connection = sqlite3.connect(live)
    connection.execute("PRAGMA secure_delete=OFF")
    connection.executemany(
        "INSERT INTO messages (chat_id, message_id, user_id, kind, text, sent_at, update_id) "
        "VALUES (?, ?, ?, 'text', ?, '2026-12-01', ?)",
        [
            (i % 50 + 1, 500_000 + i, i % 50 + 1, f"after {i} " * 6, 20_000_000 + i)
            for i in range(AFTER)
        ],
    )
    connection.executemany(
        "INSERT INTO processed_updates VALUES (?, '2026-12-01')",
        [(20_000_000 + i,) for i in range(AFTER)] + [(30_000_000 + i,) for i in range(7)],
    )
    user_rows(connection, ERASED, 400, "ERASEDMARK")
    user_rows(connection, KEPT, 300, "KEPTMARK")
    connection.commit()
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    if erase_in_wal:
        connection.execute("PRAGMA wal_autocheckpoint=0")
    erase(connection, ERASED)
    connection.commit()
    if not erase_in_wal:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    site = Site(folder / "damaged.db", None, backup)
    shutil.copyfile(live, site.live)  # copied while the writer is idle: a crash's leftovers
    if erase_in_wal:
        site.wal = folder / "damaged.db-wal"
        shutil.copyfile(f"{live}-wal", site.wal)
    connection.close()
    shutil.copyfile(site.live, folder / "pristine.db")
    if site.wal is not None:
        shutil.copyfile(site.wal, folder / "pristine.db-wal")
    site.live = folder / "pristine.db"
    return site


@pytest.fixture
def site(template: tuple[Path, Path], tmp_path: Path) -> Site:
    return make_site(template, tmp_path)


def leaf_rows(path: Path, table: str) -> dict[int, list[int]]:
    """``leaf page -> rowids on it``, from SQLite alone: dbstat's leaves in key order, each with
    its number of cells, against the rowids in order."""
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as connection:
        leaves = connection.execute(
            "SELECT pageno, ncell FROM dbstat WHERE name = ? AND pagetype = 'leaf' ORDER BY path",
            (table,),
        ).fetchall()
        rowids = [row[0] for row in connection.execute(f"SELECT rowid FROM {table} ORDER BY rowid")]
    found, at = {}, 0
    for page, cells in leaves:
        found[page] = rowids[at : at + cells]
        at += cells
    assert at == len(rowids)
    return found


def schema_pages(path: Path) -> list[int]:
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as connection:
        query = "SELECT pageno FROM dbstat WHERE name = 'sqlite_schema' ORDER BY pageno"
        return [row[0] for row in connection.execute(query)]


def root(path: Path, table: str) -> int:
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as connection:
        query = "SELECT rootpage FROM sqlite_master WHERE name = ?"
        return int(connection.execute(query, (table,)).fetchone()[0])


def damage(path: Path, pages: list[int], how: Callable[[bytearray], None] | None = None) -> None:
    data = bytearray(path.read_bytes())
    for number in pages:
        page = bytearray(PAGE)
        if how is not None:
            page[:] = data[(number - 1) * PAGE : number * PAGE]
            how(page)
        data[(number - 1) * PAGE : number * PAGE] = page
    path.write_bytes(bytes(data))


def salvaged(site: Site, folder: Path, pages: list[int], how=None) -> tuple[SalvageReport, Path]:
    """Damage a copy of the site's file, restore the backup, salvage and merge into it."""
    damaged, restored = folder / "quarantine.db", folder / "restored.db"
    shutil.copyfile(site.live, damaged)
    wal = None
    if site.wal is not None:
        wal = folder / "quarantine.db-wal"
        shutil.copyfile(site.wal, wal)
    damage(damaged, pages, how)
    shutil.copyfile(site.backup, restored)
    report = salvage_and_merge(damaged, wal, folder / "salvage.db", restored)
    return report, restored


def keyed(path: Path, table: str) -> dict[object, tuple]:
    """Rows by primary key (rowids are the restored file's own for tables without an alias)."""
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as connection:
        key = "update_id" if table == "processed_updates" else "id"
        return {row[0]: row for row in connection.execute(f"SELECT {key}, * FROM {table}")}


def check(site: Site, restored: Path, damaged_pages: list[int]) -> dict[str, tuple[int, int]]:
    """Every row of the undamaged file comes back, but those on the damaged pages; nothing comes
    back that the undamaged file does not hold exactly (the erased user never). Returns
    ``table -> (rows recovered from the damaged file, rows lost)``."""
    figures = {}
    for table in TABLES:
        before, after, backup = (
            keyed(site.live, table),
            keyed(restored, table),
            keyed(site.backup, table),
        )
        on_damaged = {
            rowid
            for page, rowids in leaf_rows(site.live, table).items()
            if page in damaged_pages
            for rowid in rowids
        }
        with closing(site.connect()) as connection:
            key = "update_id" if table == "processed_updates" else "id"
            rowid_of = dict(connection.execute(f"SELECT {key}, rowid FROM {table}"))
        lost = set(before) - set(after)
        if table == "processed_updates":  # withheld by design: each update is handled again
            lost -= set(before) - set(backup)
        assert {rowid_of[k] for k in lost} <= on_damaged, f"{table}: rows lost from intact pages"
        for key, row in after.items():
            if key not in backup:  # merged from the damaged file: exactly the row it held
                assert before.get(key) == row, f"{table}: {row} is not a row the file held"
        figures[table] = (len(set(after) - set(backup)), len(lost))
    with closing(sqlite3.connect(restored)) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    return figures


def assert_erased_stays_erased(restored: Path, damaged_bytes: bytes) -> None:
    """Not in the merged database, nor among the rows the salvage file holds as salvaged."""
    assert b"ERASEDMARK" in damaged_bytes, "the erased user's old rows must be in the file"
    with closing(sqlite3.connect(restored.with_name("salvage.db"))) as salvage:
        for table, column in (("users", "id"), ("chats", "id"), ("messages", "user_id")):
            query = f"SELECT count(*) FROM {table} WHERE {column} = ?"
            assert salvage.execute(query, (ERASED,)).fetchone()[0] == 0, table
    with closing(sqlite3.connect(restored)) as connection:
        for query in (
            "SELECT count(*) FROM users WHERE id = ?",
            "SELECT count(*) FROM chats WHERE id = ?",
            "SELECT count(*) FROM messages WHERE user_id = ?",
            "SELECT count(*) FROM notes WHERE user_id = ?",
            "SELECT count(*) FROM processed_updates WHERE update_id / 1000 = ?",
            "SELECT count(*) FROM messages_fts WHERE messages_fts MATCH 'ERASEDMARK' AND ? > 0",
        ):
            assert connection.execute(query, (ERASED,)).fetchone()[0] == 0, query
        kept = connection.execute("SELECT count(*) FROM messages WHERE user_id = ?", (KEPT,))
        assert kept.fetchone()[0] == 300


def processed_after_backup(site: Site) -> int:
    """Processed updates the damaged file holds and the backup lacks: all withheld by design."""
    return len(
        set(keyed(site.live, "processed_updates")) - set(keyed(site.backup, "processed_updates"))
    )


def flip_bits(page: bytearray) -> None:
    for at in range(0, PAGE, 97):  # 43 flips spread over the page, the header's bytes included
        page[at] ^= 1 << (at % 8)


@pytest.mark.parametrize("fault", ["page 1 zeroed", "page 1 bit flips", "every schema page zeroed"])
def test_a_damaged_schema_page_loses_no_row_on_an_intact_leaf(site, tmp_path, fault) -> None:
    pages = schema_pages(site.live) if fault.startswith("every") else [1]
    assert len(schema_pages(site.live)) > 1, "the bot's schema spans several pages"
    report, restored = salvaged(site, tmp_path, pages, flip_bits if "flips" in fault else None)
    figures = check(site, restored, pages)
    print(f"{fault}: (recovered, lost) {figures}; pages {report.pages}")
    assert figures["messages"] == (AFTER + 300, 0)
    assert figures["users"] == (1, 0) and figures["notes"] == (1, 0)
    assert figures["processed_updates"] == (0, 0)  # handled again, by replay or redelivery
    assert report.withheld == {"processed_updates": processed_after_backup(site)}
    assert_erased_stays_erased(restored, (tmp_path / "quarantine.db").read_bytes())


def test_a_zeroed_messages_root_loses_no_row_on_an_intact_leaf(site, tmp_path) -> None:
    pages = [root(site.live, "messages")]
    report, restored = salvaged(site, tmp_path, pages)
    figures = check(site, restored, pages)
    print(f"messages root zeroed: (recovered, lost) {figures}; pages {report.pages}")
    assert report.pages and report.pages["targets"] == ["messages"]
    assert report.pages["roots"]["messages"] == "unreadable"  # type: ignore[index]
    assert figures["messages"] == (AFTER + 300, 0)
    assert figures["processed_updates"] == (0, 0)
    assert_erased_stays_erased(restored, (tmp_path / "quarantine.db").read_bytes())


def test_root_and_leaves_zeroed_lose_only_the_rows_on_those_leaves(site, tmp_path) -> None:
    leaves = list(leaf_rows(site.live, "messages"))
    pages = [root(site.live, "messages"), leaves[-3], leaves[len(leaves) // 2]]
    report, restored = salvaged(site, tmp_path, pages)
    figures = check(site, restored, pages)
    print(f"messages root and two leaves zeroed: (recovered, lost) {figures}")
    assert 0 < figures["messages"][1] <= 2 * PAGE // 100  # what two leaves held, no more
    # Every processed update is withheld: each is handled again (replayed or redelivered).
    assert report.withheld["processed_updates"] == processed_after_backup(site)


def test_page_1_and_the_messages_root_both_zeroed(site, tmp_path) -> None:
    """The free-list pointer is gone with page 1: freed pages are found by their trunk pages, and
    the rows found without a root are merged only when anchored (their user is known)."""
    pages = [1, root(site.live, "messages")]
    report, restored = salvaged(site, tmp_path, pages)
    figures = check(site, restored, pages)
    print(f"page 1 and messages root zeroed: (recovered, lost) {figures}; pages {report.pages}")
    assert report.pages and str(report.pages["freelist"]).startswith("UNREADABLE")
    assert figures["messages"] == (AFTER + 300, 0)
    assert_erased_stays_erased(restored, (tmp_path / "quarantine.db").read_bytes())


def test_an_erasure_in_the_wal_is_not_undone_by_the_main_file(template, tmp_path) -> None:
    """Erased after the last checkpoint: the main file still holds the user's pages as they were.
    A leaf elsewhere is damaged, so SQLite reads messages with a gap and the page scan runs."""
    site = make_site(template, tmp_path / "site", erase_in_wal=True)
    assert site.wal is not None and site.wal.stat().st_size > 0
    leaves = list(leaf_rows(site.live, "messages"))
    report, restored = salvaged(site, tmp_path, [leaves[5]])
    figures = check(site, restored, [leaves[5]])
    print(f"erasure in the -wal, a leaf zeroed: (recovered, lost) {figures}")
    assert report.pages is not None and report.pages["view"] == "main file and -wal"
    assert_erased_stays_erased(restored, (tmp_path / "quarantine.db").read_bytes())


def test_processed_updates_are_never_merged_every_update_is_handled_again(site, tmp_path) -> None:
    """No page scan here (a leaf of messages is damaged, page 1 intact): the rule is the merge's.
    A processed update whose message survived may still have lost its note or moved a
    conversation (persistence is never merged): none is merged, so replay handles each again."""
    leaves = leaf_rows(site.live, "messages")
    newest = max(leaves, key=lambda page: max(leaves[page] or [0]))
    report, restored = salvaged(site, tmp_path, [newest])
    check(site, restored, [newest])
    before = keyed(site.backup, "processed_updates")
    after = keyed(restored, "processed_updates")
    assert after == before, "the backup's own are kept as they were, and nothing is added"
    salvaged_rows = report.read["processed_updates"]
    assert salvaged_rows > len(before)
    assert report.withheld == {"processed_updates": salvaged_rows - len(before)}
    print(f"processed updates: withheld {report.withheld}")


def test_a_row_never_lands_in_another_table(tmp_path) -> None:
    """Two tables of the same shape. After the backup, pages of ``a`` are freed and reused by
    ``b``, and new pages of both are allocated; then both roots are lost. Only pages the backup's
    map names *and* that still hold a row the backup has are placed; the rest are ambiguous."""
    live, backup = tmp_path / "live.db", tmp_path / "backup.db"
    connection = sqlite3.connect(live)
    connection.execute("PRAGMA secure_delete=OFF")
    connection.execute("CREATE TABLE a (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
    connection.execute("CREATE TABLE b (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
    for i in range(1, 3001):
        connection.execute("INSERT INTO a VALUES (?, ?)", (i, f"a-{i} " * 10))
        connection.execute("INSERT INTO b VALUES (?, ?)", (i, f"b-{i} " * 10))
    connection.commit()
    with closing(sqlite3.connect(backup)) as copy:
        connection.backup(copy)
    connection.execute("DELETE FROM a WHERE id BETWEEN 1000 AND 2000")
    connection.executemany(
        "INSERT INTO b VALUES (?, ?)", [(i, f"b-{i} " * 10) for i in range(3001, 4500)]
    )
    connection.executemany(
        "INSERT INTO a VALUES (?, ?)", [(i, f"a-{i} " * 10) for i in range(3001, 3500)]
    )
    connection.commit()
    before = {t: dict(connection.execute(f"SELECT id, body FROM {t}")) for t in ("a", "b")}
    roots = [r[0] for r in connection.execute("SELECT rootpage FROM sqlite_master")]
    connection.close()
    restored = tmp_path / "restored.db"
    shutil.copyfile(backup, restored)
    damage(live, roots)
    report = salvage_and_merge(live, None, tmp_path / "salvage.db", restored, tables=("a", "b"))
    with closing(sqlite3.connect(restored)) as connection:
        after = {t: dict(connection.execute(f"SELECT id, body FROM {t}")) for t in ("a", "b")}
    for table in ("a", "b"):
        assert all(body.startswith(f"{table}-{key} ") for key, body in after[table].items())
    assert report.pages is not None and report.pages["ambiguous"] > 0
    recovered = {t: len(set(after[t]) - set(range(1, 3001))) for t in ("a", "b")}
    lost = {t: len(set(before[t]) - set(after[t])) for t in ("a", "b")}
    print(f"same-shape tables: recovered {recovered}, lost {lost}, pages {report.pages}")
    assert report.merged == {"a": recovered["a"], "b": recovered["b"]}


def test_without_a_backup_the_salvage_file_holds_the_rows(site, tmp_path) -> None:
    """A fresh start: no restored database, shapes from the bot's schema file, no root pages:
    every leaf is found by shape; nothing is merged, the salvage file keeps them."""
    damaged = tmp_path / "quarantine.db"
    shutil.copyfile(site.live, damaged)
    damage(damaged, [1])
    report = salvage_and_merge(damaged, None, tmp_path / "salvage.db", None)
    assert report.merged == {}
    with closing(sqlite3.connect(tmp_path / "salvage.db")) as connection:
        found = {row[0] for row in connection.execute("SELECT id FROM messages")}
        unguarded = {row[0] for row in connection.execute("SELECT id FROM messages__unguarded")}
    assert found == set() and unguarded == set(keyed(site.live, "messages"))


class SeeksBelowStart:
    """A connection to a damaged b-tree as a fault campaign found one (the scan then looped
    forever, the recovery with it): a batch read fails, a one-row read answers with a row
    *below* the rowid asked for, and no rowid can be confirmed."""

    def __init__(self) -> None:
        self.reads = 0

    def execute(self, query: str, args: tuple = ()) -> SeeksBelowStart:
        self.reads += 1
        self.rows = []
        if "LIMIT" in query:
            start, limit = args
            if limit > 1:
                raise sqlite3.DatabaseError("database disk image is malformed")
            self.rows = [(min(start - 1, 8225), "x")]
        return self

    def fetchall(self) -> list:
        return self.rows

    def fetchone(self) -> tuple | None:
        return None


def test_the_rowid_scan_ends_when_a_seek_answers_below_its_start() -> None:
    counts, connection = ScanCounts(), SeeksBelowStart()
    assert list(scan_rows(connection, "messages", counts)) == []  # type: ignore[arg-type]
    assert counts.skipped_ranges["messages"] >= 1
    assert connection.reads < 2_000


def redirect(path: Path, parent: int, child: int, to: int) -> None:
    """Point the interior page ``parent``'s pointer at ``child`` to page ``to`` instead: what one
    unlucky bit flip in a child pointer does."""
    data = bytearray(path.read_bytes())
    page = data[(parent - 1) * PAGE : parent * PAGE]
    count = int.from_bytes(page[3:5], "big")
    spots = [int.from_bytes(page[12 + 2 * i : 14 + 2 * i], "big") for i in range(count)] + [8]
    (spot,) = [at for at in spots if int.from_bytes(page[at : at + 4], "big") == child]
    at = (parent - 1) * PAGE + spot
    data[at : at + 4] = to.to_bytes(4, "big")
    path.write_bytes(bytes(data))


def freed_leaf_with(path: Path, marker: bytes) -> int:
    """A page on the free-list that is an old table leaf holding ``marker``."""
    from watchdog.data.btree import read_freelist
    from watchdog.data.pages import PageImage

    with PageImage(path) as image:
        for number in sorted(read_freelist(image).pages):
            page = image.page(number) or b""
            if page[:1] == b"\x0d" and marker in page:
                return number
    raise AssertionError("no freed leaf holds the marker")


@pytest.mark.parametrize("into", ["a freed page of the erased user", "another table's leaf"])
def test_a_child_pointer_gone_astray_brings_back_no_foreign_row(site, tmp_path, into) -> None:
    """SQLite follows a damaged child pointer wherever it leads and reads what it finds as rows
    of the table: an erased user's old rows on a freed page, or another table's cells (their
    missing columns filled in). The page scan finds every live leaf (the free-list is read), so
    what SQLite read elsewhere is left out, and the leaf the pointer lost comes back."""
    rows = leaf_rows(site.live, "messages")
    with closing(site.connect()) as connection:
        first_kept = connection.execute(
            "SELECT min(id) FROM messages WHERE user_id = ?", (KEPT,)
        ).fetchone()[0]
    lost_leaf = next(page for page, rowids in rows.items() if first_kept in rowids)
    if into.startswith("a freed"):
        target = freed_leaf_with(site.live, b"ERASEDMARK")
    else:
        target = next(iter(leaf_rows(site.live, "processed_updates")))
    damaged = tmp_path / "astray.db"
    shutil.copyfile(site.live, damaged)
    redirect(damaged, root(site.live, "messages"), lost_leaf, target)
    site = Site(damaged, None, site.backup)
    folder = tmp_path / "run"
    folder.mkdir()
    report, restored = salvaged(site, folder, [])
    figures = check(Site(tmp_path / "pristine.db", None, site.backup), restored, [])
    print(f"child pointer into {into}: (recovered, lost) {figures}; {report.problems}")
    assert figures["messages"] == (AFTER + 300, 0)
    assert_erased_stays_erased(restored, damaged.read_bytes())
