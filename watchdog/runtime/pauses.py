"""The event loop's pauses: measured (``LoopLag``, in ``/metrics``), and the one that is not
its own work made short: Python's cyclic garbage collector.

An idle watchdog answering 200 requests/s allocates enough for a full (generation 2) collection
every few tens of seconds, and a full collection walks every object the process holds — the
imports, the settings, the state — about 40 ms of the loop's thread here, during which no
request is answered (measured with a ``gc.callbacks`` timer on ``python -m watchdog run``: the
idle loop's only callback over 4 ms of CPU). What start-up made lives as long as the process:
frozen (``gc.freeze``), it is left out of every later collection, which then walks only what was
made since.
"""

from __future__ import annotations

import asyncio
import gc


def freeze_long_lived() -> int:
    """Collect what start-up left as garbage, then freeze what remains; the objects frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


LAG_BUCKETS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
"""Seconds: the upper bounds of the loop-lag histogram's buckets."""
STALL = 0.02
"""A wake this late is a stall: at 200 requests/s, four requests or more waited for it."""


class LoopLag:
    """How late the event loop runs what is due: a task asks to wake every ``PERIOD`` and
    measures how much later than asked it ran. A late wake is time in which no request was
    answered: a blocking call on the loop's thread, the GIL held by another thread, or the CPU
    given to other processes. Read by ``/metrics``; plain numbers, no lock (one thread writes)."""

    PERIOD = 0.01

    def __init__(self) -> None:
        self.buckets = [0] * (len(LAG_BUCKETS) + 1)
        """Wakes per bucket of lateness (not cumulative; the last is beyond every bound)."""
        self.wakes = 0
        self.total = 0.0
        self.stalls = 0
        self.longest = 0.0

    def note(self, lag: float) -> None:
        index = next((i for i, bound in enumerate(LAG_BUCKETS) if lag <= bound), -1)
        self.buckets[index] += 1
        self.wakes += 1
        self.total += lag
        if lag > STALL:
            self.stalls += 1
        self.longest = max(self.longest, lag)

    async def run(self) -> None:
        """Until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self.PERIOD
            await asyncio.sleep(self.PERIOD)
            self.note(max(0.0, loop.time() - due))
