"""How much to check before launch, and when a backup is proven by its hash: plain functions over
plain data (``rules.startup``, ``rules.recovery.full_check_needed``), no files, no processes."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from watchdog.rules.recovery import full_check_needed
from watchdog.rules.startup import (
    CleanStop,
    FileFacts,
    parse_record,
    proof_at_stop,
    start_check,
)

DB = "/data/erixcast.db"
FACTS = FileFacts(size=4096 * 250, mtime_ns=1_800_000_000_123_456_789, inode=42, change_counter=7,
                  wal_size=None)  # fmt: skip
RECORD = CleanStop(DB, FACTS, "full-check", 1_800_000_000.0)


def test_an_unchanged_file_after_a_clean_stop_gets_the_quick_check_first():
    decision = start_check(RECORD, None, DB, FACTS)
    assert decision.quick and "unchanged" in decision.why
    assert start_check(dataclasses.replace(RECORD, proof="sha256"), None, DB, FACTS).quick


@pytest.mark.parametrize(
    "changed",
    [
        {"size": FACTS.size + 4096},
        {"mtime_ns": FACTS.mtime_ns + 1},
        {"inode": 43},
        {"change_counter": 8},
        {"wal_size": 0},
        {"wal_size": 32 + 24 + 4096},
    ],
)
def test_any_change_to_the_file_means_the_full_check_first(changed):
    now = dataclasses.replace(FACTS, **changed)
    decision = start_check(RECORD, None, DB, now)
    assert not decision.quick
    assert next(iter(changed)) in decision.why


def test_a_wal_that_went_away_is_a_change_too():
    with_wal = CleanStop(DB, dataclasses.replace(FACTS, wal_size=8272), "full-check", 1.0)
    assert not start_check(with_wal, None, DB, FACTS).quick
    assert start_check(with_wal, None, DB, with_wal.facts).quick


def test_no_record_a_bad_one_another_path_or_no_file_means_the_full_check_first():
    assert not start_check(None, None, DB, FACTS).quick
    bad = start_check(None, "the clean-stop record is not valid (format)", DB, FACTS)
    assert not bad.quick and "not valid" in bad.why
    assert not start_check(RECORD, None, "/elsewhere/erixcast.db", FACTS).quick
    assert not start_check(RECORD, None, DB, None).quick


def test_a_record_left_while_a_full_check_was_owed_vouches_for_nothing():
    owed = dataclasses.replace(RECORD, proof="none")
    decision = start_check(owed, None, DB, FACTS)
    assert not decision.quick and "full check had not finished" in decision.why


def test_what_a_stop_may_claim():
    assert proof_at_stop(full_check_passed=True, installed_by_hash=False) == "full-check"
    assert proof_at_stop(full_check_passed=False, installed_by_hash=True) == "sha256"
    assert proof_at_stop(full_check_passed=False, installed_by_hash=False) == "none"


def test_the_record_round_trips():
    assert parse_record(RECORD.as_dict()) == RECORD


def _with(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    document = RECORD.as_dict()
    target = document
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return document


@pytest.mark.parametrize(
    "document",
    [
        None,
        [],
        "record",
        {},
        _with(("format",), 2),
        _with(("format",), True),
        _with(("proof",), "trust me"),
        _with(("database",), ""),
        _with(("database",), 5),
        _with(("at",), float("nan")),
        _with(("at",), "yesterday"),
        _with(("facts",), None),
        _with(("facts", "size"), -1),
        _with(("facts", "size"), 1.5),
        _with(("facts", "size"), True),
        _with(("facts", "mtime_ns"), "1"),
        _with(("facts", "inode"), 1 << 70),
        _with(("facts", "change_counter"), None),
        _with(("facts", "wal_size"), -5),
        _with(("facts", "wal_size"), KeyError),
        {**RECORD.as_dict(), "extra": 1},
    ],
)
def test_a_record_of_any_other_shape_is_refused(document):
    with pytest.raises(ValueError):
        parse_record(document)


SHA = "a" * 64


def test_a_backup_is_proven_by_its_hash_only_when_the_check_was_of_those_very_bytes():
    assert not full_check_needed(SHA, SHA, trust_hash=True)
    assert full_check_needed(None, SHA, trust_hash=True), "an older manifest: checked again"
    assert full_check_needed("b" * 64, SHA, trust_hash=True), "checked other bytes"
    assert full_check_needed(SHA, SHA, trust_hash=False), "after a hash-proven file failed"
