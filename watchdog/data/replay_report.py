"""What the bot says its start-up replay did: its report file (``run/replay.json``), written by
the bot before it polls and read here as untrusted input. A report that cannot be read, or is not
a replay report, is set aside beside it (``replay.json.rejected``), never trusted, never a crash.
"""

from __future__ import annotations

import json
import logging
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

COUNTS = ("replayed", "erasures", "already_processed", "older_than_memory", "erased_later")
REPORT_LIMIT = 1 << 20
"""Bytes: the bot writes a few hundred (its problems are capped); more is not its report."""
PROBLEMS_KEPT = 20
REJECTED_SUFFIX = ".rejected"


@dataclass
class ReplayOutcome:
    ok: bool
    detail: str = ""
    """Why it failed, or the replay's own summary."""
    counts: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def replayed(self) -> int:
        return self.counts.get("replayed", 0)

    def summary(self) -> str:
        if not self.ok:
            return f"the journal was not replayed: {self.detail}"
        text = f"replayed {self.replayed} updates from the journal"
        if self.counts.get("erasures"):
            text += f" and {self.counts['erasures']} erasures"
        if self.problems:
            text += f" ({len(self.problems)} journal problems)"
        return text

    def as_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "detail": self.detail,
            **self.counts,
            "problems": self.problems,
            "seconds": self.seconds,
        }


def not_reported(why: str) -> ReplayOutcome:
    """The bot gave no report (it exited first, it did not answer in time, …)."""
    return ReplayOutcome(False, why)


def read_replay_report(path: Path) -> ReplayOutcome | None:
    """The outcome the bot reported, or None while there is no report. The file is consumed:
    read once, then removed (or set aside when it is not a report)."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as error:
        return _rejected(path, f"its report cannot be opened ({type(error).__name__})")
    try:
        with os.fdopen(descriptor, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                return _rejected(path, "its report is not a regular file")
            raw = handle.read(REPORT_LIMIT + 1)
    except OSError as error:
        return _rejected(path, f"its report cannot be read ({type(error).__name__})")
    if len(raw) > REPORT_LIMIT:
        return _rejected(path, f"its report is over {REPORT_LIMIT} bytes")
    try:
        document = json.loads(raw.decode("utf-8"))
    except ValueError as error:
        return _rejected(path, f"its report cannot be read ({type(error).__name__})")
    outcome = parse_replay_report(document)
    if outcome is None:
        return _rejected(path, "its report is not a replay report")
    path.unlink(missing_ok=True)
    return outcome


def parse_replay_report(document: object) -> ReplayOutcome | None:
    """A report's JSON as an outcome; None when it is not one."""
    if not isinstance(document, dict):
        return None
    error = document.get("error")
    if error is not None:
        if not isinstance(error, str):
            return None
        return ReplayOutcome(False, f"the bot's replay at its start failed: {error[:300]}")
    counts = {}
    for name in COUNTS:
        value = document.get(name, 0)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            return None
        counts[name] = value
    problems = document.get("problems", [])
    if not isinstance(problems, list):
        problems = ["(the report's problems are not a list)"]
    seconds = document.get("seconds", 0.0)
    return ReplayOutcome(
        True,
        counts=counts,
        problems=[str(problem)[:300] for problem in problems[:PROBLEMS_KEPT]],
        seconds=float(seconds) if isinstance(seconds, int | float) and seconds >= 0 else 0.0,
    )


def _rejected(path: Path, why: str) -> ReplayOutcome:
    """Set the file aside (the last rejected one is kept) and say why it was not trusted."""
    try:
        os.replace(path, path.with_name(path.name + REJECTED_SUFFIX))
    except OSError as error:
        log.warning("cannot set the replay report %s aside: %s", path, error)
    log.error("the bot's replay report %s was set aside: %s", path, why)
    return ReplayOutcome(False, why)
