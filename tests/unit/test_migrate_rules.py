"""The migration's decisions (``watchdog.rules.migrate``), without a database or a process."""

from __future__ import annotations

import json

import pytest

from watchdog.rules.migrate import (
    Batch,
    Record,
    RecordError,
    TableProgress,
    advance,
    copy_problem,
    count_differences,
    judge_target,
    next_batch,
    parse_record,
    record_document,
    row_differences,
    sample_points,
    scrub,
    switch_over,
    with_password_slot,
)

WHERE = "postgresql://bot@db.example:5432/erixcast"
"""A URL as the operator is shown it (``DatabaseURL.redacted``)."""


def record(*tables: TableProgress, verified: bool = False) -> Record:
    return Record(
        snapshot="snapshot-1.db",
        sha256="ab" * 32,
        source="/data/erixcast.db",
        taken_at=1000.0,
        live=False,
        tables=tables,
        copied_at=2000.0 if verified else None,
        verified_at=3000.0 if verified else None,
    )


def test_the_password_never_shows():
    assert with_password_slot(WHERE) == "postgresql://bot:***@db.example:5432/erixcast"
    assert with_password_slot("postgresql://db/x") == "postgresql://db/x"
    error = 'connection to "db.example" failed:\n  FATAL: user bot, password s3cr@t-pw\n'
    line = scrub(error, ["s3cr%40t-pw", "s3cr@t-pw"])
    assert "s3cr" not in line and "\n" not in line and "***" in line


def test_batches_walk_every_table_in_order_and_end():
    current = record(
        TableProgress("users", 3, 0, 0),
        TableProgress("empty", 0),
        TableProgress("messages", 5, 0, 9),
    )
    seen = []
    while (batch := next_batch(current, batch_rows=2)) is not None:
        seen.append(batch)
        last = batch.after + batch.limit  # rowids without gaps, for the walk
        current = advance(current, batch.table, last, batch.limit)
    assert seen == [
        Batch("users", 0, 2),
        Batch("users", 2, 1),
        Batch("messages", 9, 2),
        Batch("messages", 11, 2),
        Batch("messages", 13, 1),
    ]
    assert current.copied == current.rows == 8
    assert all(t.done for t in current.tables)


def test_a_batch_that_does_not_follow_is_refused():
    current = record(TableProgress("users", 10, 4, 40))
    for last, rows in ((40, 2), (39, 1), (50, 0), (99, 7)):
        with pytest.raises(ValueError):
            advance(current, "users", last, rows)
    assert advance(current, "users", 90, 6).table("users") == TableProgress("users", 10, 10, 90)


def test_a_short_read_from_the_snapshot_is_a_problem():
    assert copy_problem(Batch("users", 0, 5), 5) is None
    assert "changed since" in (copy_problem(Batch("users", 0, 5), 4) or "")
    assert copy_problem(Batch("users", 0, 5), 0)


def test_the_record_round_trips_and_rejects_damage():
    original = record(TableProgress("users", 3, 1, -7), verified=True)
    again = parse_record(json.loads(json.dumps(record_document(original))))
    assert again == original
    damaged = [
        {"format": 99},
        "not a dict",
        {
            **record_document(original),
            "tables": [{"name": "users", "total": 1, "copied": 2, "after": 0}],
        },
        {
            **record_document(original),
            "tables": [{"name": "users", "total": -1, "copied": 0, "after": 0}],
        },
        {**record_document(original), "snapshot": "../../etc/passwd"},
        {**record_document(original), "sha256": ""},
        {k: v for k, v in record_document(original).items() if k != "source"},
    ]
    for document in damaged:
        with pytest.raises(RecordError):
            parse_record(document)


def test_the_target_is_judged():
    assert judge_target(set(), None, WHERE).kind == "empty"
    foreign = judge_target({"invoices", "customers"}, None, WHERE)
    assert foreign.kind == "foreign" and "not empty" in foreign.line and WHERE in foreign.line
    unfinished = judge_target(
        {"users", "_erixcast_migration"}, record(TableProgress("users", 4, 1, 1)), WHERE
    )
    assert unfinished.kind == "unfinished" and "1 of 4 rows" in unfinished.line
    done = judge_target({"users"}, record(TableProgress("users", 4, 4, 4), verified=True), WHERE)
    assert done.kind == "finished" and "already" in done.line


def test_samples_cover_the_ends_and_repeat_for_a_seed():
    points = sample_points(1, 1_000_000, count=50, seed=3)
    assert len(points) == 50 and points[0] == 1 and points[-1] == 1_000_000
    assert points == sorted(set(points))
    assert points == sample_points(1, 1_000_000, count=50, seed=3)
    assert points != sample_points(1, 1_000_000, count=50, seed=4)
    assert sample_points(-5, -3, count=50) == [-5, -4, -3]
    assert sample_points(5, 4) == []


def test_rows_compare_value_by_value():
    columns = ("id", "text", "blob", "flag")
    assert (
        row_differences("t id=1", columns, (1, "é", b"x", 1), (1, "é", memoryview(b"x"), True))
        == []
    )
    found = row_differences("t id=1", columns, (1, "é", b"x", 1), (1, "e", b"x", 1))
    assert found == ["t id=1: text is 'e' in the target, 'é' in the source"]
    assert row_differences("t id=2", columns, (2, None, None, 0), None) == [
        "t id=2: missing in the target"
    ]
    assert row_differences("t id=3", columns, (3, None, None, 0), (3, "", None, 0))
    assert count_differences({"a": 1, "b": 2}, {"a": 1}) == [
        "b: 0 rows in the target, 2 in the source"
    ]


def test_switch_over_masks_and_warns_after_a_live_snapshot():
    calm = switch_over(
        WHERE, record(TableProgress("users", 4, 4, 4), verified=True), live_now=False
    )
    text = "\n".join(calm)
    assert "DATABASE_URL=postgresql://bot:***@db.example:5432/erixcast" in text
    assert "NOT in PostgreSQL" not in text
    live = "\n".join(switch_over(WHERE, record(TableProgress("users", 4, 4, 4)), live_now=True))
    assert "NOT in PostgreSQL" in live and "stop the stack" in live
