"""A supervisord event listener: when the watchdog goes FATAL, end supervisord with a failure.

supervisord gives up on a program after ``startretries`` quick exits and then idles forever with
nothing running; the platform would see a live process and never restart it. supervisord exits 0
on every signal it handles, so the only way to make it exit non-zero is a signal it does not
handle: SIGKILL, sent when nothing else of ours is running any more (FATAL means the watchdog is
down, and the bot dies with its watchdog).

A bad setting or a refused place does not wait for FATAL: the watchdog ends supervisord itself
(``cli/run.py`` ``give_up``), since a retry cannot mend it and a slow failing start on a loaded
machine can outlast ``startsecs`` and look like a successful one.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import TextIO

WATCHED = "watchdog"


def parse_tokens(line: str) -> dict[str, str]:
    return dict(token.split(":", 1) for token in line.split() if ":" in token)


GIVE_UP = "watchdog: restarting cannot mend this"
"""What the watchdog writes on stderr when no retry can help (see ``cli/run.py``)."""


def should_end_supervisord(event_name: str, payload: dict[str, str], data: str = "") -> bool:
    if payload.get("processname") != WATCHED:
        return False
    if event_name == "PROCESS_STATE_FATAL":
        return True
    return event_name == "PROCESS_LOG_STDERR" and GIVE_UP in data


def listen(stdin: TextIO, stdout: TextIO, on_fatal) -> None:  # type: ignore[no-untyped-def]
    while True:
        stdout.write("READY\n")
        stdout.flush()
        header_line = stdin.readline()
        if not header_line:
            return  # supervisord is gone
        header = parse_tokens(header_line)
        body = stdin.read(int(header.get("len", "0")))
        first, _, data = body.partition("\n")
        payload = parse_tokens(first)
        if should_end_supervisord(header.get("eventname", ""), payload, data):
            on_fatal(payload)
        stdout.write("RESULT 2\nOK")
        stdout.flush()


def end_supervisord(payload: dict[str, str]) -> None:
    print(
        f"fatal_guard: {payload.get('processname')} went FATAL or gave up (see its last lines "
        "above); ending supervisord with a failure so the platform notices",
        file=sys.stderr,
        flush=True,
    )
    os.kill(os.getppid(), signal.SIGKILL)


if __name__ == "__main__":
    listen(sys.stdin, sys.stdout, end_supervisord)
