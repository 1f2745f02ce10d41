"""Named moments at which a test can have the bot killed -9, to prove what survives a crash at
the worst time (``ERIXCAST_CRASH_AT=<name>``, read once; unset in every real deployment, where
:func:`reached` does nothing).

- ``journal-written``: the batch is in the journal, the database has not committed it;
- ``committed``: the database committed, Telegram has not been told.
"""

from __future__ import annotations

import os
import signal

_CRASH_AT = os.environ.get("ERIXCAST_CRASH_AT") or None


def reached(name: str) -> None:
    if name == _CRASH_AT:
        os.kill(os.getpid(), signal.SIGKILL)
