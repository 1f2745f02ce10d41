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


def test_the_loop_lag_probe_counts_a_blocked_loop_as_a_stall_and_metrics_expose_it():
    """A lower bound only: the loop blocked for 60 ms wakes the probe at least 50 ms late,
    however loaded the machine is."""
    import asyncio
    import time

    from prometheus_client import generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from tests.unit.test_web_exposure import fake_watchdog
    from watchdog.runtime.pauses import STALL, LoopLag
    from watchdog.web.metrics import build_registry

    lag = LoopLag()

    async def blocked() -> None:
        probe = asyncio.get_running_loop().create_task(lag.run())
        await wake(0)  # the probe is sleeping now
        time.sleep(0.06)  # the loop's thread blocked, as a blocking call on it would
        await wake(lag.wakes)
        probe.cancel()

    async def wake(seen: int) -> None:
        for _ in range(1000):  # bounded: at most 1000 of the probe's periods
            if lag.wakes > seen:
                return
            await asyncio.sleep(LoopLag.PERIOD)
        raise AssertionError("the probe never woke")

    asyncio.run(asyncio.wait_for(blocked(), 30))
    assert lag.stalls >= 1 and lag.longest >= 0.05 > STALL
    assert sum(lag.buckets) == lag.wakes and lag.buckets[3] + sum(lag.buckets[4:]) >= 1
    text = generate_latest(build_registry(fake_watchdog(None), lag=lag)).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    stalls = families["erixcast_watchdog_loop_stalls"].samples[0]
    assert stalls.value == lag.stalls
    histogram = families["erixcast_watchdog_loop_lag_seconds"].samples
    count = next(s.value for s in histogram if s.name.endswith("_count"))
    assert count == lag.wakes
    assert families["erixcast_watchdog_loop_lag_max_seconds"].samples[0].value == lag.longest
