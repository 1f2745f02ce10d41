"""Progress for long commands (``backup``, ``verify``, ``drill``): one line on a terminal,
rewritten in place, and nothing at all when the output is piped or redirected (a script or a
log reads only the results). Written to stderr, so stdout stays the answer."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

TICK = 0.5
"""How often a running step's clock is redrawn."""


def shows_progress(stream: TextIO, environ: dict[str, str] | os._Environ[str] = os.environ) -> bool:
    """A person is watching: the stream is a terminal that is not ``TERM=dumb``."""
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        return False
    return tty and environ.get("TERM", "") != "dumb"


class Progress:
    def __init__(self, stream: TextIO | None = None, enabled: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = shows_progress(self.stream) if enabled is None else enabled

    def show(self, text: str) -> None:
        if self.enabled:
            self.stream.write("\r\x1b[K" + text)
            self.stream.flush()

    def clear(self) -> None:
        self.show("")

    @contextmanager
    def running(self, text: str) -> Iterator[None]:
        """``text`` with a clock (``backing up… 3 s``) while the block runs; cleared after."""
        if not self.enabled:
            yield
            return
        started = time.monotonic()
        stop = threading.Event()

        def draw() -> None:
            while True:
                self.show(f"{text}… {time.monotonic() - started:.0f} s")
                if stop.wait(TICK):
                    return

        painter = threading.Thread(target=draw, daemon=True)
        painter.start()
        try:
            yield
        finally:
            stop.set()
            painter.join()
            self.clear()
