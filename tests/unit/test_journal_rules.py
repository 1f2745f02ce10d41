"""The journal's decisions, as plain data: which segments go, when a push is due, which
journal packages the branch may let go, and what a restore takes."""

from __future__ import annotations

import pytest

from watchdog.rules.journal import (
    COVER_MARGIN,
    JournalPackage,
    Segment,
    covered_until,
    packages_since,
    packages_to_drop,
    prune_plan,
    push_due,
)

NOW = 1_800_000_000.0
MB = 1_000_000


def segments(*newest: float | None, size: int = MB) -> list[Segment]:
    return [Segment(number, at, size) for number, at in enumerate(newest, start=1)]


@pytest.mark.parametrize(
    ("local", "offsite", "configured", "expected"),
    [
        ([], None, False, None),  # no backup: nothing covered
        ([NOW - 100, NOW - 50], None, False, NOW - 50),  # the newest local backup
        ([NOW - 100, NOW - 50], None, True, None),  # offsite configured, nothing offsite yet
        ([NOW - 100, NOW - 50], NOW - 100, True, NOW - 100),  # only what went offsite
        ([NOW - 100, NOW + 3600], None, False, NOW - 100),  # dated ahead: covers nothing
        ([NOW - 100], NOW + 3600, True, None),
    ],
)
def test_what_the_backups_cover(local, offsite, configured, expected):
    assert covered_until(local, offsite, configured, NOW) == expected


@pytest.mark.parametrize(
    ("newest", "until", "removed"),
    [
        # the backup began after segment 1 and 2's newest entries (with the margin)
        ((NOW - 300, NOW - 200, NOW - 10), NOW - 100, (1, 2)),
        # segment 2's newest entry is inside the margin: it stays
        ((NOW - 300, NOW - 100 - COVER_MARGIN / 2, NOW - 10), NOW - 100, (1,)),
        # exactly the margin is enough
        ((NOW - 300, NOW - 100 - COVER_MARGIN, NOW - 10), NOW - 100, (1, 2)),
        # each segment is judged alone: one newer than the backup stays, an older one after it goes
        ((NOW - 300, NOW - 50, NOW - 400, NOW - 10), NOW - 100, (1, 3)),
        # the newest-numbered segment never goes, however old
        ((NOW - 300, NOW - 200), NOW, (1,)),
        # an empty closed segment holds nothing: it goes once anything is covered
        ((None, NOW - 200, NOW - 10), NOW - 100, (1, 2)),
        # nothing covered: nothing goes
        ((NOW - 300, NOW - 200, NOW - 10), None, ()),
        # a single segment: it is the newest
        ((NOW - 300,), NOW, ()),
    ],
)
def test_which_covered_segments_go(newest, until, removed):
    plan = prune_plan(segments(*newest), until, total_bytes=len(newest) * MB, max_bytes=100 * MB)
    assert plan.covered == removed
    assert plan.over_bound == ()


def test_a_segment_no_offsite_backup_covers_stays():
    journal = segments(NOW - 300, NOW - 200, NOW - 10)
    local_only = covered_until([NOW - 100], None, offsite_configured=True, now=NOW)
    assert prune_plan(journal, local_only, 3 * MB, 100 * MB).numbers == ()
    pushed = covered_until([NOW - 100], NOW - 250, offsite_configured=True, now=NOW)
    assert prune_plan(journal, pushed, 3 * MB, 100 * MB).numbers == (1,)


@pytest.mark.parametrize(
    ("total", "bound", "until", "covered", "over"),
    [
        (5 * MB, 10 * MB, None, (), ()),  # under the bound
        (5 * MB, 3 * MB, None, (), (1, 2)),  # oldest first, until under the bound
        (5 * MB, 3 * MB, NOW - 250, (1,), (2,)),  # the covered ones count first
        (5 * MB, 4 * MB, NOW - 250, (1,), ()),  # covered pruning alone is enough
        (5 * MB, 0, None, (), (1, 2, 3, 4)),  # never the newest, whatever the bound
    ],
)
def test_the_size_bound_removes_the_oldest_closed_segments(total, bound, until, covered, over):
    journal = segments(NOW - 300, NOW - 200, NOW - 150, NOW - 100, NOW - 10)
    plan = prune_plan(journal, until, total, bound)
    assert (plan.covered, plan.over_bound) == (covered, over)
    assert plan.bytes_after == total - MB * (len(covered) + len(over))


@pytest.mark.parametrize(
    ("last", "changed", "due"),
    [
        (None, True, True),  # never pushed (or a restart): at once
        (None, False, False),  # nothing to push
        (NOW - 299, True, False),
        (NOW - 300, True, True),
        (NOW - 3600, False, False),
        (NOW + 3600, True, True),  # the clock went back: push
    ],
)
def test_a_journal_push_is_due(last, changed, due):
    assert push_due(NOW, last, 300.0, changed) is due


@pytest.mark.parametrize(
    ("last", "erased_at", "due"),
    [
        (NOW - 10, NOW - 5, True),  # an erasure after the last push: at once, not in 290 s
        (NOW - 10, NOW - 20, False),  # already on the branch
        (None, NOW - 5, True),
        (NOW - 300, None, True),  # the ordinary interval still applies
    ],
)
def test_an_erasure_makes_the_journal_push_due_at_once(last, erased_at, due):
    assert push_due(NOW, last, 300.0, True, erased_at) is due


def packages(*newest: float | None) -> list[JournalPackage]:
    return [
        JournalPackage(f"j{i}", created_at=NOW - 1000 + i, newest_at=at)
        for i, at in enumerate(newest)
    ]


@pytest.mark.parametrize(
    ("newest", "backup_at", "held", "dropped"),
    [
        ((NOW - 900, NOW - 600, NOW - 300), NOW - 500, False, {"j0", "j1"}),
        ((NOW - 900, NOW - 600, NOW - 300), NOW - 700, False, {"j0"}),
        # the newest package stays even when covered (it carries the erasure records)
        ((NOW - 900, NOW - 600), NOW, False, {"j0"}),
        # rotation held after a fresh start, or no backup on the branch: nothing goes
        ((NOW - 900, NOW - 600, NOW - 300), NOW - 500, True, set()),
        ((NOW - 900, NOW - 600, NOW - 300), None, False, set()),
        # the only copy of updates newer than the newest backup stays
        ((NOW - 900, NOW - 400, NOW - 300), NOW - 500, False, {"j0"}),
        # a package without updates (only erasures) goes once covered by time alone
        ((None, NOW - 300), NOW - 500, False, {"j0"}),
    ],
)
def test_which_journal_packages_the_branch_lets_go(newest, backup_at, held, dropped):
    assert packages_to_drop(packages(*newest), backup_at, held) == dropped


def test_a_restore_takes_what_the_backup_lacks_and_the_newest():
    found = packages(NOW - 900, NOW - 600, NOW - 300, None)
    assert [p.id for p in packages_since(found, NOW - 650)] == ["j1", "j2", "j3"]
    assert [p.id for p in packages_since(found, NOW)] == ["j3"]
    assert [p.id for p in packages_since(found, 0.0)] == ["j0", "j1", "j2", "j3"]
    assert packages_since([], NOW) == []
