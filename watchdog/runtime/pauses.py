"""The event loop's one pause that is not its own work: Python's cyclic garbage collector.

An idle watchdog answering 200 requests/s allocates enough for a full (generation 2) collection
every few tens of seconds, and a full collection walks every object the process holds — the
imports, the settings, the state — about 40 ms of the loop's thread here, during which no
request is answered (measured with a ``gc.callbacks`` timer on ``python -m watchdog run``: the
idle loop's only callback over 4 ms of CPU). What start-up made lives as long as the process:
frozen (``gc.freeze``), it is left out of every later collection, which then walks only what was
made since.
"""

from __future__ import annotations

import gc


def freeze_long_lived() -> int:
    """Collect what start-up left as garbage, then freeze what remains; the objects frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
