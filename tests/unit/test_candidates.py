"""Candidates for the live database: the schema comparison and the order, as plain functions, then
on real files (the bot's own databases, forged backups, a fake offsite store)."""

from __future__ import annotations

import dataclasses
import hashlib
import re
import sqlite3
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.storage import Storage
from conf import schema
from conf.layout import DataLayout
from tests import dbgen, forge
from tests.helpers import TEST_RETENTION
from watchdog.data.backups import BackupKeeper
from watchdog.data.catalogue import Backup, Catalogue, Manifest
from watchdog.data.database import connect, read_schema
from watchdog.data.drill import drill_one
from watchdog.data.recovery import (
    RestoreError,
    first_good_offsite,
    prepare_backup,
    recover,
    schema_problem,
)
from watchdog.data.restore import choose, restore_requested
from watchdog.offsite import OffsiteError
from watchdog.rules.recovery import (
    SQLITE_SEQUENCE,
    SQLITE_STAT_TABLES,
    candidates_newest_first,
    latest_trusted,
    schema_differences,
)
from watchdog.rules.schedule import FUTURE_SLACK

EXPECTED = list(schema.expected_schema())
NOW = 1_800_000_000.0


def without(*names: str) -> list[schema.SchemaRow]:
    return [row for row in EXPECTED if row[1] not in names and row[2] not in names]


def replaced(name: str, sql: str) -> list[schema.SchemaRow]:
    return [(k, n, t, sql if n == name else s) for k, n, t, s in EXPECTED]


# -- the rule, as a plain function ------------------------------------------------------------


def test_the_bots_own_schema_in_any_order_has_no_difference() -> None:
    assert schema_differences(EXPECTED, EXPECTED) == []
    assert schema_differences(list(reversed(EXPECTED)), EXPECTED) == []


def test_an_older_schema_missing_what_came_later_is_accepted() -> None:
    older = without("messages_fts", "notes_fts", "notes", "ix_notes_user")
    assert schema_differences(older, EXPECTED) == []


def test_extra_objects_are_named() -> None:
    planted = [
        ("trigger", "messages_copy", "messages", forge.PLANTED_TRIGGER),
        ("view", "everyone", "everyone", forge.PLANTED_VIEW),
        ("table", "loot", "loot", "CREATE TABLE loot (x)"),
        ("index", "ix_loot", "loot", "CREATE INDEX ix_loot ON loot (x)"),
    ]
    assert schema_differences(EXPECTED + planted, EXPECTED) == [  # by name
        "extra view everyone",
        "extra index ix_loot",
        "extra table loot",
        "extra trigger messages_copy",
    ]


def test_altered_objects_are_named() -> None:
    index = replaced("ix_messages_user", "CREATE INDEX ix_messages_user ON messages (text)")
    assert schema_differences(index, EXPECTED) == ["altered index ix_messages_user"]
    trigger = replaced(
        "messages_fts_insert",
        "CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN SELECT 1; END",
    )
    assert schema_differences(trigger, EXPECTED) == ["altered trigger messages_fts_insert"]
    as_view = [
        ("view", n, t, "CREATE VIEW users AS SELECT 1") if n == "users" else (k, n, t, s)
        for k, n, t, s in EXPECTED
    ]
    assert schema_differences(as_view, EXPECTED) == ["altered table users (now a view)"]


def test_names_are_one_case_insensitive_namespace() -> None:
    twin = [("table", "USERS", "USERS", "CREATE TABLE USERS (id)")]
    assert schema_differences(EXPECTED + twin, EXPECTED) == [
        "duplicate name users: table USERS, table users"
    ]


def test_sqlite_internal_tables_are_allowed_exactly() -> None:
    assert schema_differences(EXPECTED + list(SQLITE_STAT_TABLES), EXPECTED) == []
    forged = [("table", "sqlite_stat1", "sqlite_stat1", "CREATE TABLE sqlite_stat1(a,b,c,d)")]
    assert schema_differences(EXPECTED + forged, EXPECTED) == ["altered table sqlite_stat1"]
    # No declared table uses AUTOINCREMENT: sqlite_sequence means a table that is not the bot's.
    assert schema_differences([*EXPECTED, SQLITE_SEQUENCE], EXPECTED) == [
        "extra table sqlite_sequence"
    ]
    counting = [("table", "t", "t", "CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT)")]
    assert schema_differences([*counting, SQLITE_SEQUENCE], counting) == []
    lookalike = [("table", "sqlite_stat9", "sqlite_stat9", "CREATE TABLE sqlite_stat9(x)")]
    assert schema_differences(EXPECTED + lookalike, EXPECTED) == ["extra table sqlite_stat9"]


def test_fts_shadow_tables_are_the_declared_ones_exactly() -> None:
    content = [
        ("table", "messages_fts_content", "messages_fts_content", "CREATE TABLE x (id, c0)")
    ]  # an external-content index has no _content table
    assert schema_differences(EXPECTED + content, EXPECTED) == ["extra table messages_fts_content"]
    assert schema_differences(without("messages_fts_idx"), EXPECTED) == [
        "missing table messages_fts_idx of messages_fts"
    ]


# -- the order, as a plain function -----------------------------------------------------------


@dataclass(frozen=True)
class Dated:
    id: str
    created_at: float


def test_newest_first_and_future_dated_last() -> None:
    items = [
        Dated("old", NOW - 7200),
        Dated("far-future", NOW + 86400),
        Dated("new", NOW - 60),
        Dated("skewed", NOW + FUTURE_SLACK - 1),  # within the clock skew: trusted
        Dated("near-future", NOW + FUTURE_SLACK + 60),
    ]
    order = [item.id for item in candidates_newest_first(items, NOW)]
    assert order == ["skewed", "new", "old", "near-future", "far-future"]
    assert latest_trusted(items, NOW) == Dated("skewed", NOW + FUTURE_SLACK - 1)
    assert latest_trusted([Dated("far-future", NOW + 86400)], NOW) is None
    assert latest_trusted([], NOW) is None


# -- real files -------------------------------------------------------------------------------


def made_by_the_bot(path: Path) -> Path:
    Storage.open(path).close()
    return path


def test_the_bots_own_databases_pass(tmp_path: Path) -> None:
    assert schema_problem(made_by_the_bot(tmp_path / "bot.db")) is None
    older = made_by_the_bot(tmp_path / "older.db")
    with closing(sqlite3.connect(older)) as connection:  # an older database: no search index
        for index in schema.SEARCH_INDEXES:
            connection.execute(f"DROP TABLE {index}")
        connection.commit()
    Storage.open(older).close()  # the bot builds it, further on in sqlite_master
    assert [row[1] for row in read_schema(older)] != [row[1] for row in EXPECTED]
    assert schema_problem(older) is None
    with closing(sqlite3.connect(older)) as connection:
        connection.execute("ANALYZE")
    assert schema_problem(older) is None
    generated = tmp_path / "generated.db"
    dbgen.create_bot(generated, 50_000)
    assert schema_problem(generated) is None


def test_a_foreign_schema_is_named(tmp_path: Path) -> None:
    path = made_by_the_bot(tmp_path / "bot.db")
    with closing(sqlite3.connect(path)) as connection:
        connection.execute(forge.PLANTED_TRIGGER)
        connection.execute("DROP INDEX ix_messages_user")
        connection.execute("CREATE INDEX ix_messages_user ON messages (chat_id)")
        connection.execute("CREATE TABLE loot (x)")
        connection.commit()
    problem = schema_problem(path)
    assert problem is not None
    assert "altered index ix_messages_user" in problem
    assert "extra table loot" in problem and "extra trigger messages_copy" in problem
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database" * 100)
    assert "schema unreadable" in (schema_problem(garbage) or "")


def test_every_connection_has_trusted_schema_off(tmp_path: Path) -> None:
    path = made_by_the_bot(tmp_path / "bot.db")
    called: list[int] = []
    with closing(sqlite3.connect(path)) as connection:
        connection.create_function("boom", 0, lambda: called.append(1) or 1)
        connection.execute("CREATE VIEW loud AS SELECT boom() AS x")
        connection.commit()
    for mode in ("ro", "rw"):
        for immutable in (False, True):
            with closing(connect(path, mode, immutable=immutable)) as connection:  # type: ignore[arg-type]
                assert connection.execute("PRAGMA trusted_schema").fetchone()[0] == 0
                connection.create_function("boom", 0, lambda: called.append(1) or 1)
                with pytest.raises(sqlite3.OperationalError, match="unsafe use of boom"):
                    connection.execute("SELECT x FROM loud").fetchall()
    # The check reads the file's schema without running any of it.
    assert schema_problem(path) == "not the bot's schema: extra view loud"
    assert called == []


def test_no_other_way_into_a_database_file() -> None:
    """Every sqlite3.connect in the watchdog is database.connect's (defined in data.opening), but
    for salvage's merge into a proven database (its FTS5 triggers need a trusted schema)."""
    root = Path(__file__).resolve().parents[2] / "watchdog"
    found = {
        f"{path.relative_to(root)}:{line.strip()}"
        for path in root.rglob("*.py")
        for line in path.read_text().splitlines()
        if re.search(r"sqlite3\.connect\(", line)
    }
    assert found == {
        "data/opening.py:connection = sqlite3.connect(uri, uri=True, timeout=timeout)",
        "data/salvage.py:connection = sqlite3.connect(restored, timeout=30)",
    }


# -- local backups: forged, future-dated ------------------------------------------------------


@pytest.fixture
def site(tmp_path: Path) -> tuple[DataLayout, BackupKeeper]:
    layout = DataLayout(tmp_path / "data", tmp_path / "data" / "erixcast.db")
    layout.ensure()
    dbgen.create_bot(layout.database, 60_000)
    return layout, BackupKeeper(layout, keep=TEST_RETENTION, min_free_bytes=0, app_version="t")


def take(keeper: BackupKeeper, when: float, tier: str = "hourly") -> Backup:
    outcome = keeper.take(tier, "test", when)
    assert outcome.backup is not None
    return outcome.backup


def live_schema_names(layout: DataLayout) -> set[str]:
    return {row[1] for row in read_schema(layout.database)}


def test_a_forged_local_backup_is_refused_and_the_older_genuine_one_restored(site) -> None:
    layout, keeper = site
    now = time.time()
    older = take(keeper, now - 120)
    newest = take(keeper, now - 60)
    newest = forge.rewrite(newest, forge.PLANTED_VIEW, forge.PLANTED_TRIGGER)
    with pytest.raises(RestoreError, match="extra trigger messages_copy"):
        prepare_backup(layout, newest)
    assert not list(layout.database.parent.glob(".tmp-restore-*"))
    layout.database.write_bytes(b"garbage" * 100)
    result = recover(layout, "test", "garbage", now)
    assert result.restored_from == older.id and result.source == "local"
    assert len(result.rejected) == 1
    assert newest.id in result.rejected[0]
    assert "extra trigger messages_copy" in result.rejected[0]
    assert "extra view everyone" in result.rejected[0]
    assert newest.id in result.summary() and "extra trigger" in result.summary()
    assert {"messages_copy", "everyone"}.isdisjoint(live_schema_names(layout))
    assert schema_problem(layout.database) is None


def test_the_operators_restore_refuses_a_foreign_schema_and_changes_nothing(site) -> None:
    layout, keeper = site
    backup = take(keeper, time.time() - 60, "manual")
    backup = forge.rewrite(backup, "CREATE TABLE loot (x)")
    before = layout.database.read_bytes()
    with pytest.raises(RestoreError, match=r"extra table loot.*nothing changed"):
        restore_requested(layout, "latest", time.time())
    assert layout.database.read_bytes() == before
    assert not layout.quarantine.exists() or not any(layout.quarantine.iterdir())
    drilled = drill_one(backup, layout.run)
    assert not drilled.ok and "extra table loot" in drilled.detail


def test_a_weekly_backup_whose_zstd_stream_is_damaged_fails_its_drill_with_a_reason(site) -> None:
    """Its stored sha256 vouching for the damaged bytes (a manifest rewritten with them): the
    drill gets as far as decompressing, and says what it found rather than raising."""
    layout, keeper = site
    weekly = take(keeper, NOW, "weekly")
    assert weekly.manifest.compression == "zstd"
    data = bytearray(weekly.data_path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(64)
    weekly.data_path.write_bytes(bytes(data))
    vouched = dataclasses.replace(
        weekly,
        manifest=dataclasses.replace(weekly.manifest, file_sha256=hashlib.sha256(data).hexdigest()),
    )
    drilled = drill_one(vouched, layout.run)
    assert not drilled.ok and "cannot decompress" in drilled.detail


def test_a_future_dated_backup_is_never_the_newest(site) -> None:
    layout, keeper = site
    now = time.time()
    today = take(keeper, now - 60)
    forge.copy_dated(today, now + 86400)
    catalogue = Catalogue(layout)
    assert choose(catalogue, "latest", now).id == today.id
    layout.database.unlink()
    result = recover(layout, "test", "missing", now)
    assert result.restored_from == today.id and result.rejected == []
    catalogue.remove(today)  # only backups dated in the future are left
    with pytest.raises(RestoreError, match="in the future"):
        choose(catalogue, "latest", now)


# -- offsite: every entry tried, through candidates() and fetch() -----------------------------


@dataclass(frozen=True)
class Entry:
    id: str
    created_at: float


@dataclass(frozen=True)
class Candidates:
    entries: tuple[Entry, ...]
    refused: tuple[object, ...]


class FakeStore:
    """list/fetch over local backups: ``damaged`` ids fail fetch's sha256 check."""

    def __init__(self, backups: list[Backup], damaged: set[str]) -> None:
        self.backups = {backup.id: backup for backup in backups}
        self.damaged = damaged
        self.fetched: list[str | None] = []

    def list(self) -> list[Entry]:
        entries = [Entry(b.id, b.created_at) for b in self.backups.values()]
        return sorted(entries, key=lambda e: e.created_at, reverse=True)

    def candidates(self, now: float | None = None) -> Candidates:
        return Candidates(tuple(self.list()), ())

    def fetch(self, entry_id: str | None, dest: Path) -> Manifest:
        self.fetched.append(entry_id)
        if entry_id is None:
            entry_id = self.list()[0].id
        if entry_id in self.damaged:
            raise OffsiteError(
                f"offsite backup {entry_id}: the restored database does not match its sha256",
                "corrupt",
            )
        backup = self.backups[entry_id]
        dest.write_bytes(backup.data_path.read_bytes())
        return backup.manifest


def test_offsite_walks_every_entry_newest_first(site) -> None:
    layout, keeper = site
    now = time.time()
    oldest = take(keeper, now - 300)
    good = take(keeper, now - 200)
    forged = take(keeper, now - 100)
    forge.rewrite(forged, forge.PLANTED_TRIGGER)
    damaged = take(keeper, now - 50)
    ahead = forge.copy_dated(damaged, now + 86400)
    backups = Catalogue(layout).scan()
    store = FakeStore(backups, damaged={damaged.id, ahead.stem})
    rejected: list[str] = []
    fetched = first_good_offsite(layout, store, now, rejected)
    assert fetched is not None and fetched[1].id == good.id
    fetched[0].unlink()
    assert store.fetched == [damaged.id, forged.id, good.id]
    assert len(rejected) == 2
    assert rejected[0].startswith(f"offsite backup {damaged.id}: ") and "sha256" in rejected[0]
    assert forged.id in rejected[1] and "extra trigger messages_copy" in rejected[1]
    # A lost disk: no database, no local backups; the older good one comes back.
    for backup in backups:
        backup.manifest_path.unlink()
    layout.database.unlink()
    result = recover(layout, "the database file is missing", "", now, store)
    assert result.restored_from == good.id and result.source == "offsite"
    assert [r.split(":")[0] for r in result.rejected] == [
        f"offsite backup {damaged.id}",
        f"offsite backup {forged.id}",
    ]
    assert oldest.id not in "".join(result.rejected)


def test_every_candidate_bad_is_a_fresh_start_naming_each(site) -> None:
    layout, keeper = site
    now = time.time()
    forged = take(keeper, now - 200)
    forge.rewrite(forged, forge.PLANTED_VIEW)
    broken = take(keeper, now - 100)
    broken.data_path.write_bytes(b"\0" * 4096)
    offsite = FakeStore([forged, broken], damaged={forged.id, broken.id})
    layout.database.write_bytes(b"garbage" * 100)
    result = recover(layout, "test", "garbage", now, offsite)
    assert result.fresh
    assert len(result.rejected) == 4
    named = " | ".join(result.rejected)
    assert f"local backup {forged.id}: not the bot's schema: extra view everyone" in named
    assert f"local backup {broken.id}: sha256 mismatch" in named
    assert f"offsite backup {forged.id}" in named and f"offsite backup {broken.id}" in named
    assert "NO USABLE BACKUP" in result.summary() and "refused 4" in result.summary()


def test_a_compressed_backup_may_not_grow_past_its_manifest(site) -> None:
    layout, keeper = site
    weekly = take(keeper, time.time() - 60, "weekly")
    shrunk = dataclasses.replace(weekly.manifest, size_bytes=weekly.manifest.size_bytes // 4)
    forge.write_manifest(weekly, shrunk)
    with pytest.raises(RestoreError, match="decompresses to more than"):
        prepare_backup(layout, dataclasses.replace(weekly, manifest=shrunk))
    assert not list(layout.database.parent.glob(".tmp-restore-*"))
