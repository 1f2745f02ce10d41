"""What a restored database gets back from the journal, decided without processes."""

from __future__ import annotations

from bot.replay_plan import MEMORY_MARGIN, plan_replay
from conf.journal import ERASURE, UPDATE, JournalEntry

WEEK = 7 * 24 * 3600.0
T0 = 1_700_000_000.0


def update(update_id: int, user: int = 1, at: float | None = None) -> JournalEntry:
    return JournalEntry(UPDATE, update_id, T0 + update_id if at is None else at, user,
                        {"update_id": update_id})  # fmt: skip


def erasure(update_id: int, user: int, at: float | None = None) -> JournalEntry:
    return JournalEntry(ERASURE, update_id, T0 + update_id if at is None else at, user)


def ids(plan):
    return [(a.kind, a.update_id) for a in plan.actions]


def test_what_the_database_holds_is_not_replayed_the_rest_is_in_order():
    plan = plan_replay([update(3), update(1), update(2), update(4)], [], {1, 2}, T0 + 2, WEEK)
    assert ids(plan) == [(UPDATE, 3), (UPDATE, 4)]
    assert plan.already_processed == 2


def test_an_empty_memory_replays_everything():
    plan = plan_replay([update(1), update(2)], [], set(), None, WEEK)
    assert plan.updates == 2


def test_entries_older_than_the_databases_memory_are_not_replayed():
    newest = T0 + 30 * 24 * 3600
    old = update(5, at=newest - WEEK + MEMORY_MARGIN - 1)
    young = update(6, at=newest - WEEK + MEMORY_MARGIN + 1)
    plan = plan_replay([old, young], [], {7}, newest, WEEK)
    assert ids(plan) == [(UPDATE, 6)]
    assert plan.older_than_memory == 1


def test_an_erased_user_never_comes_back_but_may_start_again():
    entries = [update(1, user=9), update(2, user=8), update(3, user=9), update(6, user=9)]
    plan = plan_replay(entries, [erasure(4, user=9)], set(), None, WEEK)
    assert ids(plan) == [(UPDATE, 2), (ERASURE, 4), (UPDATE, 6)]
    assert plan.erased_later == 2
    assert plan.erasures == 1


def test_the_update_that_erased_is_not_replayed_the_erasure_is():
    plan = plan_replay([update(4, user=9)], [erasure(4, user=9)], set(), None, WEEK)
    assert ids(plan) == [(ERASURE, 4)]


def test_an_erasure_the_database_already_made_is_not_made_again():
    plan = plan_replay([update(6, user=9)], [erasure(4, user=9)], {4}, T0 + 4, WEEK)
    assert ids(plan) == [(UPDATE, 6)]


def test_an_erasure_found_twice_is_applied_once():
    plan = plan_replay([], [erasure(4, user=9), erasure(4, user=9)], set(), None, WEEK)
    assert ids(plan) == [(ERASURE, 4)]
