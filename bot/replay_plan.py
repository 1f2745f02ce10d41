"""Which journal entries a restored database still needs: plain rules over plain data.

A restored database remembers the updates it holds in ``processed_updates`` for
``PROCESSED_UPDATES_KEPT`` (a week). An entry is replayed when that memory does not hold it and
it is young enough for the memory to tell; an update of a user erased later never comes back;
an erasure is applied again when the database does not hold the update that made it.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field

from conf.journal import ERASURE, UPDATE, JournalEntry

MEMORY_MARGIN = 24 * 3600.0
"""Seconds taken off the database's memory of processed updates before trusting its silence."""


@dataclass
class ReplayPlan:
    actions: list[JournalEntry] = field(default_factory=list)
    """Updates and erasures to apply, in the order Telegram numbered them."""
    already_processed: int = 0
    older_than_memory: int = 0
    erased_later: int = 0

    @property
    def updates(self) -> int:
        return sum(1 for action in self.actions if action.kind == UPDATE)

    @property
    def erasures(self) -> int:
        return sum(1 for action in self.actions if action.kind == ERASURE)


def plan_replay(
    updates: Iterable[JournalEntry],
    erasures: Iterable[JournalEntry],
    processed: set[int],
    newest_processed_at: float | None,
    memory_seconds: float,
) -> ReplayPlan:
    """``updates`` may be a stream (only the actions are kept); ``processed``: the update_ids
    the database holds (at least those the journal could hold); ``newest_processed_at``: when
    the newest was committed (None: it holds none, and every entry is replayed)."""
    erasures = list(erasures)
    last_erasure: dict[int, int] = {}
    for erasure in erasures:
        assert erasure.user_id is not None
        last_erasure[erasure.user_id] = max(
            last_erasure.get(erasure.user_id, -1), erasure.update_id
        )
    horizon = (
        None
        if newest_processed_at is None
        else newest_processed_at - memory_seconds + MEMORY_MARGIN
    )
    plan = ReplayPlan()
    applied: set[tuple[str, int]] = set()
    for entry in itertools.chain(updates, erasures):
        if (entry.kind, entry.update_id) in applied:
            continue
        if entry.update_id in processed:
            plan.already_processed += 1
            continue
        if horizon is not None and entry.at < horizon:
            plan.older_than_memory += 1
            continue
        erased_at = last_erasure.get(entry.user_id, -1) if entry.user_id is not None else -1
        if entry.kind == UPDATE and erased_at >= entry.update_id:
            plan.erased_later += 1
            continue
        applied.add((entry.kind, entry.update_id))
        plan.actions.append(entry)
    # In Telegram's order; an update and the erasure it made share an update_id: update first.
    plan.actions.sort(key=lambda e: (e.update_id, e.kind == ERASURE))
    return plan
