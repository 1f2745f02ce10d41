"""The tables the campaign prints (Markdown, so that they go into the README as they are)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any


class Cell(str):
    """A table cell already made (not shortened again)."""


def cell(value: Any, limit: int = 200) -> Cell:
    text = " / ".join(line.strip() for line in str(value).splitlines() if line.strip())
    text = text.replace("|", "\\|")
    return Cell(text if len(text) <= limit else text[: limit - 1] + "…")


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += [
        "| " + " | ".join(v if isinstance(v, Cell) else cell(v) for v in row) + " |" for row in rows
    ]
    return "\n".join(lines)


def seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f} s"


def fault_table(runs: Sequence[Any], kinds: Sequence[str]) -> str:
    rows = []
    for kind in kinds:
        mine = [run for run in runs if run.kind == kind]
        if not mine:
            continue
        times = [run.recover_s for run in mine if run.recovered and run.recover_s is not None]
        rows.append(
            (
                kind,
                len(mine),
                sum(1 for run in mine if run.recovered),
                seconds(statistics.median(times)) if times else "-",
                seconds(max(times)) if times else "-",
            )
        )
    return table(("fault", "injected", "recovered", "recover median", "recover max"), rows)


def waits(runs: Sequence[Any]) -> list[str]:
    """For the slow recoveries: what /health said meanwhile."""
    lines = []
    for run in runs:
        if run.waited_for and (run.recover_s is None or run.recover_s > 15):
            said = " → ".join(cell(v, 160) for v in run.waited_for[:4])
            lines.append(f"- #{run.number} {run.kind}, while awaited: {said}")
    return lines


def updates_table(account: Any) -> str:
    return table(
        (
            "sent",
            "acknowledged",
            "present",
            "lost within a destroyed-data window",
            "lost otherwise",
            "double effects",
        ),
        [
            (
                account.sent,
                account.acknowledged,
                account.present,
                len(account.lost_in_window),
                len(account.lost_otherwise),
                account.double_effects,
            )
        ],
    )


def sequence_table(runs: Sequence[Any]) -> str:
    rows = [
        (
            run.number,
            f"{run.started_s:.0f} s",
            run.kind,
            run.detail,
            run.evidence or "-",
            "yes" if run.recovered else "**no**",
            seconds(run.recover_s),
            cell("; ".join(run.problems) or "-", 600),
        )
        for run in runs
    ]
    return table(
        ("#", "at", "fault", "what was done", "what the stack did", "recovered", "in", "problems"),
        rows,
    )
