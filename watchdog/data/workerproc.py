"""What a worker process (``data.checker``, ``data.maker``) needs before anything else, importing
next to nothing: its priority, its page cache, and dying with its parent."""

from __future__ import annotations

import contextlib
import os
import signal
import sys

CHECK_NICE = 10
"""The ``nice`` command's default: background work that yields to everything interactive."""
CACHE_KIB = 12288
"""Page cache of a check connection while it checks a table with indexes (``checker``; other jobs
use SQLite's default 2 MB: a table without an index, the page accounting and a quick_check read
each page once, and a cache only costs memory — the worker's peak at 100 MB 62.6 → 48 MB). The
index look-ups of a big table run 30 % faster than with the default 2 MB. Sized by measurement (the
whole verified backup in the worker, the bot's 100 MB database, n = 6, medians): 16 MB 1.27 s,
12 MB 1.22 s, 8 MB 1.52 s; at 1 GB ``integrity_check(messages)`` took 20–25 CPU s with 4, 8, 12
or 16 MB alike. No memory map (SQLite's default): a mapped file's pages count in the worker's
RSS, about the whole file (110 MB per worker at 100 MB, a gigabyte at 1 GB, on a 512 MB Render
instance), for a check only about 10 % faster."""
SMALL_CACHE_KIB = 2048
"""SQLite's default page cache: the other jobs' (page accounting, tables without an index)."""
MAX_PROBLEMS = 100
PENDING_BYTE = 0x40000000
"""The page holding this offset is never used by SQLite (the lock byte page)."""
PR_SET_PDEATHSIG = 1


def lower_priority(*, idle: bool = True) -> None:
    """Background work yields to everything interactive: nice +10 and, where the kernel has it and
    ``idle``, the idle scheduling class (``SCHED_IDLE``, inherited by the worker's threads): the
    worker then runs only on CPU time no other task wants, and a request handler that wakes takes
    its core at once. Under nice +10 alone a 1 GB backup's threads (copy, check, hash, counts) held
    the cores often enough to double the watchdog's p99 during a backup (measured: 12.8–41 ms
    against 6.4–9.9 ms, ``make bench BENCH_ARGS=http_latency``). The price: on a machine whose
    every core is busy with other work, the worker waits for it to end (its deadline still holds)."""
    with contextlib.suppress(OSError):
        os.nice(CHECK_NICE - os.nice(0))
    if idle and hasattr(os, "SCHED_IDLE"):
        with contextlib.suppress(OSError):
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))


def scheduling() -> dict[str, object]:
    """This process's nice and whether it runs in the idle class, as a worker reports them."""
    idle = hasattr(os, "SCHED_IDLE") and os.sched_getscheduler(0) == os.SCHED_IDLE
    return {"nice": os.nice(0), "idle": idle}


def die_with_parent(parent: int) -> None:
    """SIGKILL when the process (thread) that started this worker goes away: a worker never
    outlives the watchdog or command whose work it does. Exits when the parent is already gone."""
    if sys.platform.startswith("linux"):
        import ctypes  # only here: the one call that needs it

        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)  # find_library would run ldconfig
            libc.prctl(PR_SET_PDEATHSIG, ctypes.c_ulong(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)
