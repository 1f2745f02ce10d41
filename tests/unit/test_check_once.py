"""Check once, prove by hash, on real SQLite files: a backup fully checked when it was made is
proven on restore by the sha256 of its copy and the schema, with no second integrity_check; bytes
that no longer match are refused; a forged manifest whose sha256 matches forged bytes is caught by
the schema or, once installed, by the full check (and the recovery that follows checks fully)."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import pytest

from conf.layout import DataLayout
from tests import dbgen, forge
from tests.helpers import TEST_RETENTION
from watchdog.data import recovery, snapshot
from watchdog.data.backups import BackupKeeper
from watchdog.data.catalogue import Backup, Catalogue
from watchdog.data.cleanstop import read_facts, record_path, take_record, write_record
from watchdog.data.database import check_database
from watchdog.data.recovery import RestoreError, check_deferred, prepare_backup, recover
from watchdog.data.restore import restore_and_tell, restore_requested
from watchdog.rules.startup import start_check


@pytest.fixture
def site(tmp_path: Path) -> tuple[DataLayout, BackupKeeper]:
    layout = DataLayout(tmp_path / "data", tmp_path / "data" / "erixcast.db")
    layout.ensure()
    dbgen.create_bot(layout.database, 1_500_000)
    return layout, BackupKeeper(layout, keep=TEST_RETENTION, min_free_bytes=0, app_version="t")


@pytest.fixture
def checks(monkeypatch) -> list[Path]:
    """Every integrity_check a restore runs, by the file it ran on."""
    seen: list[Path] = []
    real = snapshot.integrity_problem

    def counted(path: Path, *args, **kwargs):
        seen.append(path)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(recovery, "integrity_problem", counted)
    monkeypatch.setattr(snapshot, "integrity_problem", counted)
    return seen


def take(keeper: BackupKeeper, when: float, tier: str = "hourly") -> Backup:
    outcome = keeper.take(tier, "test", when)  # its own check is the one made at backup time
    assert outcome.backup is not None
    return outcome.backup


def test_a_backup_records_the_full_check_of_its_very_bytes(site):
    layout, keeper = site
    for tier in ("hourly", "weekly"):
        manifest = take(keeper, time.time() - 60, tier).manifest
        assert manifest.checked_sha256 == manifest.sha256 and manifest.proven_by_hash
        stored = Catalogue(layout).find(manifest.id)
        assert stored is not None and stored.manifest.checked_sha256 == manifest.sha256


@pytest.mark.parametrize("tier", ["manual", "weekly"])
def test_a_proven_backup_is_restored_without_a_second_check(site, checks, tier):
    layout, keeper = site
    backup = take(keeper, time.time() - 60, tier)
    checks.clear()
    summary, deferred = restore_and_tell(layout, "latest", time.time())
    assert backup.id in summary and deferred
    assert checks == [], "proven by sha256 and the schema alone"
    record, problem = take_record(layout)
    assert problem is None and record is not None and record.proof == "sha256"
    decision = start_check(record, None, str(layout.database), read_facts(layout.database))
    assert decision.quick, "the next start trusts the install: quick_check, then the full check"
    assert check_database(layout.database).ok


def test_a_backup_from_before_the_record_is_checked_once(site, checks):
    layout, keeper = site
    backup = take(keeper, time.time() - 60, "manual")
    forge.write_manifest(backup, dataclasses.replace(backup.manifest, checked_sha256=None))
    checks.clear()
    _, deferred = restore_and_tell(layout, "latest", time.time())
    assert not deferred
    assert checks == [backup.data_path], "one check, of the stored file (while it is copied)"
    record, _ = take_record(layout)
    assert record is not None and record.proof == "full-check"


@pytest.mark.parametrize("tier", ["manual", "weekly"])
def test_a_backup_whose_bytes_no_longer_match_its_hash_is_refused(site, checks, tier):
    layout, keeper = site
    backup = take(keeper, time.time() - 60, tier)
    data = bytearray(backup.data_path.read_bytes())
    data[len(data) // 2] ^= 0x01
    backup.data_path.write_bytes(bytes(data))
    before = layout.database.read_bytes()
    with pytest.raises(RestoreError, match=r"sha256 mismatch.*nothing changed"):
        restore_requested(layout, "latest", time.time())
    assert layout.database.read_bytes() == before
    assert not record_path(layout).exists()
    assert not list(layout.database.parent.glob(".tmp-restore-*"))


def test_a_forged_schema_claiming_the_check_is_refused_by_the_schema(site, checks):
    layout, keeper = site
    older = take(keeper, time.time() - 120)
    forged = forge.rewrite(take(keeper, time.time() - 60), forge.PLANTED_TRIGGER)
    assert forged.manifest.proven_by_hash, "the forger claims the full check too"
    with pytest.raises(RestoreError, match="extra trigger messages_copy"):
        prepare_backup(layout, forged)
    layout.database.write_bytes(b"garbage" * 100)
    result = recover(layout, "test", "garbage", time.time())
    assert result.restored_from == older.id and result.check_deferred
    assert any(forged.id in reason for reason in result.rejected)


def test_forged_damaged_pages_with_a_matching_hash_fail_the_full_check_then_are_refused(site):
    layout, keeper = site
    older = take(keeper, time.time() - 120)
    forged = take(keeper, time.time() - 60)
    forge.damage_pages(forged.data_path, "messages")
    forged = forge.relabel(forged, claim_checked=True)
    assert check_deferred(forged)
    layout.database.write_bytes(b"garbage" * 100)
    first = recover(layout, "test", "garbage", time.time())
    assert first.restored_from == forged.id and first.check_deferred, "installed on its hash"
    found = check_database(layout.database)
    assert found.state == "corrupt", "the full check of the installed file finds it"
    # What the guard does next: a new recovery, in which no candidate is trusted on its hash.
    second = recover(layout, "integrity", found.detail, time.time(), trust_hash=False)
    assert second.restored_from == older.id and not second.check_deferred
    assert any(forged.id in r and "integrity_check failed" in r for r in second.rejected)
    assert check_database(layout.database).ok


def test_the_clean_stop_record_is_taken_once_and_a_bad_one_is_no_record(site):
    layout, _ = site
    assert take_record(layout) == (None, None)
    written = write_record(layout, "full-check", time.time())
    assert written is not None and written.facts == read_facts(layout.database)
    assert take_record(layout)[0] == written
    assert take_record(layout) == (None, None), "it vouches for one start only"
    for text in ("{", "[]", json.dumps({**written.as_dict(), "proof": "trust me"})):
        record_path(layout).write_text(text)
        record, problem = take_record(layout)
        assert record is None and problem and "not valid" in problem
        assert not record_path(layout).exists()
    record_path(layout).mkdir()
    record, problem = take_record(layout)
    assert record is None and problem and "unreadable" in problem
