"""The start-up's objects are left out of later garbage collections (``runtime.pauses``)."""

from __future__ import annotations

import gc

from watchdog.runtime.pauses import freeze_long_lived


def test_what_start_up_made_is_frozen_and_later_collections_walk_only_what_came_after():
    held = [[number, str(number)] for number in range(50_000)]  # long-lived, as start-up's are
    garbage = [[]]
    garbage[0].append(garbage)  # a cycle only a collection frees
    del garbage
    try:
        frozen = freeze_long_lived()
        assert frozen >= len(held) and gc.get_freeze_count() == frozen
        gc.collect()
        walked = len(gc.get_objects())  # what a full collection walks now
        assert walked < len(held) // 2, walked
        after = [[number] for number in range(1000)]
        assert len(gc.get_objects()) >= walked + len(after), "new objects are collected as before"
    finally:
        gc.unfreeze()
    assert len(gc.get_objects()) >= len(held)
