"""The deploy backup in two halves, as plain functions: the copy before the new version's bot
starts, its proof after.

A deploy's downtime used to hold a whole verified backup (at 1 GB: the copy 2 s, its
``integrity_check`` 19 s). Only the copy has to come before the new code touches the data: it
is made then, hashed and staged (``data.catalogue``: an *unverified* copy, never counted by any
tier). Its verification — the same bytes (sha256), the full check, the row counts — runs once
the bot answers; the ``deploy`` tier counts it only then. A copy that fails is set aside (kept
beside, named in the event log and /health, never counted).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from watchdog.rules import schedule

BOT_GRACE = 60.0
"""Seconds after its launch the proof waits at most for a bot that is not answering yet."""

StartAction = Literal["copy", "record", "wait", "none"]


@dataclass(frozen=True)
class DeployStart:
    action: StartAction
    """``copy``: stage a deploy copy now, then record the version; ``record``: record the
    version without a copy (no database yet); ``wait``: do nothing (a damaged database: the
    copy is tried at the next start); ``none``: same version."""
    why: str


def at_start(current: str, recorded: str | None, integrity: str) -> DeployStart:
    """What the start-up does about a deploy, before the bot's launch. ``integrity``: the live
    database's state after the start-up check (``ok``, ``missing``, ``corrupt``, ``unknown``)."""
    if not schedule.deploy_snapshot_needed(current, recorded):
        return DeployStart("none", f"version {current} already recorded")
    change = f"deploy: {recorded or 'first run'} -> {current}"
    if integrity == "ok":
        return DeployStart("copy", change)
    if integrity == "missing":
        return DeployStart("record", f"{change}; no database to copy yet")
    return DeployStart("wait", f"{change}; the database is not sound ({integrity})")


def may_verify(phase: str, launched_at: float | None, now: float) -> bool:
    """The proof of staged copies runs once the bot answers (``running``), or when there is no
    bot to wait for (none configured, held, backing off, stopped), or when a launched bot has
    not answered within BOT_GRACE (a bot that never becomes ready does not hold it forever)."""
    if phase == "running":
        return True
    if phase in ("starting", "stopping"):
        return launched_at is not None and now - launched_at >= BOT_GRACE
    return True


@dataclass(frozen=True)
class Proof:
    counts: bool
    """True: the copy becomes a backup of its tier. False: it is set aside."""
    why: str


def judge(
    staged_sha256: str, found_sha256: str | None, problem: str | None, missing: bool = False
) -> Proof:
    """The verdict on a staged copy: it is still the bytes copied (``found_sha256``, None
    when it could not be read), and the full check passed on them (``problem`` None)."""
    if missing:
        return Proof(False, "the staged copy's data file is missing")
    if found_sha256 is None:
        return Proof(False, "the staged copy cannot be read")
    if found_sha256 != staged_sha256:
        return Proof(False, "the staged copy changed since it was made (sha256 mismatch)")
    if problem is not None:
        return Proof(False, f"the staged copy failed integrity_check: {problem}")
    return Proof(True, "same bytes as copied, integrity_check ok")


def copy_during_check(quick: bool, current: str, recorded: str | None, stages: bool) -> bool:
    """Whether the deploy copy is made while the start-up ``quick_check`` runs (two cores; the
    bot is not running yet): for a deploy, on a file the last clean stop vouches for (a quick
    start), by a kind of database whose deploy copy is staged. If the check then fails, the copy
    is dropped: it is never staged."""
    return quick and stages and at_start(current, recorded, "ok").action == "copy"
