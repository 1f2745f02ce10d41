"""Die with the watchdog: a bot outliving its parent would keep polling (409 for the next one).

The watchdog puts its pid in ``ERIXCAST_WATCHDOG_PID``. ``arm()`` asks the kernel to send SIGTERM
when the parent goes away (``PR_SET_PDEATHSIG``), then checks that the parent is still the one that
launched us: if it died before the request took effect, we were re-parented and must leave now.

Note for the launcher: Linux ties the death signal to the parent *thread*; launch the bot from a
thread that lives as long as the watchdog (its main/event-loop thread).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
import sys

ENV_PARENT_PID = "ERIXCAST_WATCHDOG_PID"
PR_SET_PDEATHSIG = 1

log = logging.getLogger(__name__)


def _set_parent_death_signal(signum: int) -> bool:
    """True when the kernel accepted the request (Linux only; elsewhere a no-op)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        result = libc.prctl(PR_SET_PDEATHSIG, ctypes.c_ulong(signum), 0, 0, 0)
    except (OSError, AttributeError):
        return False
    return result == 0


def supervised() -> bool:
    return bool(os.environ.get(ENV_PARENT_PID, "").strip())


def stop_signals() -> tuple[int, ...]:
    """Signals that stop the bot. Under the watchdog only SIGTERM: Ctrl-C in a terminal reaches the
    whole process group, and a SIGINT followed by the watchdog's SIGTERM would be a second stop
    signal, which makes python-telegram-bot abort its final flush. The watchdog sends the one."""
    return (signal.SIGTERM,) if supervised() else (signal.SIGTERM, signal.SIGINT)


def arm() -> None:
    """Call first thing in main(). Exits at once (status 0) when the watchdog is already gone."""
    expected = os.environ.get(ENV_PARENT_PID, "").strip()
    if not expected:
        return  # started by hand: nobody to follow
    _set_parent_death_signal(signal.SIGTERM)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # see stop_signals()
    try:
        parent = int(expected)
    except ValueError:
        print(f"bot: ignoring {ENV_PARENT_PID}={expected!r} (not a pid)", file=sys.stderr)
        return
    if os.getppid() != parent:
        print(
            f"bot: the watchdog (pid {parent}) is gone before the bot started; exiting",
            file=sys.stderr,
        )
        raise SystemExit(0)
