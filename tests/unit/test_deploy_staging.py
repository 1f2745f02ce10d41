"""The deploy backup in two halves: the rules (``rules.deploy``) and the staged copy on real
files (``data.staging`` through ``BackupKeeper``): counted only once proven, else set aside."""

from __future__ import annotations

import json
import sqlite3

import pytest

from conf.layout import DataLayout
from tests import dbgen
from watchdog.data.backups import BackupKeeper
from watchdog.data.catalogue import Catalogue
from watchdog.rules import deploy

NOW = 1_800_000_000.0


def test_at_start_copies_only_for_a_new_version_of_a_sound_database():
    assert deploy.at_start("b", "a", "ok").action == "copy"
    assert deploy.at_start("a", None, "ok").action == "copy"
    assert deploy.at_start("a", "a", "ok").action == "none"
    assert deploy.at_start("b", "a", "missing").action == "record"
    assert deploy.at_start("b", "a", "corrupt").action == "wait"
    assert deploy.at_start("b", "a", "unknown").action == "wait"


def test_the_proof_waits_for_the_bot_to_answer_but_not_forever():
    assert deploy.may_verify("running", NOW - 1, NOW)
    assert not deploy.may_verify("starting", NOW - 1, NOW)
    assert deploy.may_verify("starting", NOW - deploy.BOT_GRACE, NOW)
    assert deploy.may_verify("not_configured", None, NOW)
    assert deploy.may_verify("backoff", NOW - 1, NOW)


def test_judge():
    digest = "a" * 64
    assert deploy.judge(digest, digest, None).counts
    assert not deploy.judge(digest, "b" * 64, None).counts
    assert not deploy.judge(digest, None, None).counts
    assert not deploy.judge(digest, digest, "row 3 missing from index").counts
    assert not deploy.judge(digest, digest, None, missing=True).counts


@pytest.fixture
def keeper(tmp_path) -> BackupKeeper:
    data = tmp_path / "data"
    data.mkdir()
    dbgen.create(data / "erixcast.db", 400_000)
    return BackupKeeper(DataLayout(data, data / "erixcast.db"), {"deploy": 5}, 0, "v2")


def _tiers(keeper: BackupKeeper) -> list[str]:
    return [backup.tier for backup in keeper.catalogue.scan()]


def test_a_staged_copy_counts_only_once_proven(keeper):
    staged = keeper.stage("deploy", "deploy: v1 -> v2", NOW)
    assert _tiers(keeper) == [], "an unverified copy is no backup"
    assert keeper.staged() == [staged]
    assert keeper.cleanup() == [], "a staged copy is no leftover"
    proven = keeper.prove(staged)
    assert proven.backup is not None
    assert _tiers(keeper) == ["deploy"]
    manifest = proven.backup.manifest
    assert manifest.sha256 == staged.sha256 == manifest.checked_sha256
    assert manifest.created_at == NOW and manifest.rows["messages"] > 0
    assert keeper.staged() == []


def test_a_copy_changed_since_it_was_made_is_set_aside(keeper):
    staged = keeper.stage("deploy", "deploy", NOW)
    data, _ = keeper.catalogue.staged_paths("deploy", staged.id)
    with data.open("r+b") as handle:
        handle.seek(data.stat().st_size - 10)
        handle.write(b"x")
    proven = keeper.prove(staged)
    assert proven.backup is None and "sha256" in proven.detail
    assert proven.set_aside is not None and proven.set_aside.exists()
    assert _tiers(keeper) == [] and keeper.staged() == []
    assert keeper.cleanup() == [], "a set-aside copy is kept for a look"


def test_a_copy_that_fails_its_check_is_set_aside(keeper):
    staged = keeper.stage("deploy", "deploy", NOW)
    data, record = keeper.catalogue.staged_paths("deploy", staged.id)
    connection = sqlite3.connect(f"file:{data}?mode=ro&immutable=1", uri=True)
    leaf = connection.execute(
        "SELECT pageno FROM dbstat WHERE name = 'messages' AND pagetype = 'leaf' LIMIT 1 OFFSET 3"
    ).fetchone()[0]
    connection.close()
    raw = bytearray(data.read_bytes())
    start = (leaf - 1) * 4096
    raw[start + 8 : start + 200] = bytes(range(192))
    data.write_bytes(bytes(raw))
    # As if the live file was already damaged when copied: the record hashes the damaged bytes.
    from watchdog.data.snapshot import sha256_of

    document = json.loads(record.read_text())
    document["sha256"] = sha256_of(data)
    record.write_text(json.dumps(document))
    proven = keeper.prove(keeper.staged()[0])
    assert proven.backup is None and "integrity_check" in proven.detail
    assert _tiers(keeper) == []


def test_a_record_of_the_wrong_shape_is_no_copy(keeper):
    staged = keeper.stage("deploy", "deploy", NOW)
    _, record = keeper.catalogue.staged_paths("deploy", staged.id)
    record.write_text(json.dumps({"id": staged.id}))
    assert Catalogue(keeper.layout).staged() == []
