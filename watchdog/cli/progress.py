"""Progress for long commands (``backup``, ``verify``, ``restore``, ``drill``, whether done here
or by the running watchdog at the command's request): one line on a terminal,
rewritten in place, and nothing at all when the output is piped or redirected (a script or a
log reads only the results). Written to stderr, so stdout stays the answer."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
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


class Step:
    """What a running step says: drawn at once when it changes, and at each tick."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.changed: Callable[[], None] = lambda: None

    def say(self, text: str) -> None:
        if text != self.text:
            self.text = text
            self.changed()


class Progress:
    def __init__(self, stream: TextIO | None = None, enabled: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = shows_progress(self.stream) if enabled is None else enabled
        self._drawing = threading.Lock()

    def show(self, text: str) -> None:
        if self.enabled:
            with self._drawing:
                self.stream.write("\r\x1b[K" + text)
                self.stream.flush()

    def clear(self) -> None:
        self.show("")

    @contextmanager
    def running(self, text: str) -> Iterator[Step]:
        """``text`` with a clock (``backing up… 3 s``) while the block runs; cleared after. The
        block may change the text as it goes (``step.say("[2/5] verifying …")``)."""
        step = Step(text)
        if not self.enabled:
            yield step
            return
        started = time.monotonic()
        stop = threading.Event()

        def line() -> None:
            self.show(f"{step.text}… {time.monotonic() - started:.0f} s")

        def draw() -> None:
            while True:
                line()
                if stop.wait(TICK):
                    return

        step.changed = line

        painter = threading.Thread(target=draw, daemon=True)
        painter.start()
        try:
            yield step
        finally:
            stop.set()
            painter.join()
            self.clear()
