"""What ``python -m bot replay`` says it did: its report file, read as untrusted input."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

COUNTS = ("replayed", "erasures", "already_processed", "older_than_memory", "erased_later")


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


def read_replay_report(path: Path, exit_code: int | None) -> ReplayOutcome:
    """The outcome of one replay run that exited with ``exit_code`` (None: it was stopped)."""
    if exit_code is None:
        return ReplayOutcome(False, "it did not finish in time and was stopped")
    if exit_code != 0:
        return ReplayOutcome(False, f"the bot's replay exited with code {exit_code}")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        return ReplayOutcome(False, f"its report cannot be read ({type(error).__name__})")
    if not isinstance(document, dict):
        return ReplayOutcome(False, "its report is not a JSON object")
    counts = {}
    for name in COUNTS:
        value = document.get(name, 0)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            return ReplayOutcome(False, f"its report has no count {name!r}")
        counts[name] = value
    problems = document.get("problems", [])
    if not isinstance(problems, list):
        problems = ["(the report's problems are not a list)"]
    seconds = document.get("seconds", 0.0)
    return ReplayOutcome(
        True,
        counts=counts,
        problems=[str(problem)[:300] for problem in problems[:20]],
        seconds=float(seconds) if isinstance(seconds, int | float) else 0.0,
    )
