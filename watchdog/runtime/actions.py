"""What an operator's command does to the data, the same whether the running watchdog does it
(in a worker thread, at the command's request over the admin API) or the command itself (when no
watchdog runs): plain blocking functions whose answers are JSON-able, so that the command prints
one shape whichever process did the work."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from watchdog.data.backups import Outcome
from watchdog.data.catalogue import Backup, Catalogue
from watchdog.data.snapshot import verify_backup

if TYPE_CHECKING:  # a terminal backup needs none of the drill's imports (PostgreSQL's driver)
    from watchdog.data.drill import DrillResult

Answer = dict[str, Any]


class RequestFailed(Exception):
    """What an operator asked for could not be done: one line, for the command to print."""


def backup_answer(outcome: Outcome) -> Answer:
    """A verified backup as the command prints it: its manifest, where it is, what retention
    pruned to make room."""
    assert outcome.backup is not None
    return {
        "manifest": json.loads(outcome.backup.manifest.to_json()),
        "path": str(outcome.backup.data_path),
        "pruned": [str(pruned) for pruned in outcome.pruned],
    }


def catalogue_answer(catalogue: Catalogue, tier: str | None = None) -> list[Answer]:
    """Every verified backup's manifest (of ``tier``, or all), newest first."""
    backups = [b for b in catalogue.scan() if tier in (None, b.tier)]
    return [json.loads(b.manifest.to_json()) for b in reversed(backups)]


def chosen_backups(catalogue: Catalogue, wanted: str | None, every: bool) -> list[Backup] | None:
    """The backups ``verify`` checks: one by id (None when there is no such backup), all of them,
    or by default the newest of each tier."""
    if wanted:
        backup = catalogue.find(wanted)
        return [backup] if backup else None
    backups = catalogue.scan()
    if every:
        return backups
    return [b for b in catalogue.newest_by_tier(backups).values() if b is not None]


def verify_answer(backup: Backup, scratch: Path) -> Answer:
    started = time.monotonic()
    verdict = verify_backup(backup, scratch)
    return {
        "id": backup.id,
        "tier": backup.tier,
        "size_bytes": backup.manifest.size_bytes,
        "ok": verdict.ok,
        "detail": verdict.detail,
        "seconds": round(time.monotonic() - started, 3),
    }


def drill_answer(results: list[DrillResult]) -> list[Answer]:
    return [result.as_dict() for result in results]
