"""The bot's start-up replay reports what it did, or how it failed, in the file the watchdog
reads after a restore; the watchdog's one reader reads it back."""

from __future__ import annotations

import asyncio
import json
import sqlite3

import pytest

from bot.replay import replay_at_start
from watchdog.data.replay_report import read_replay_report

TOKEN = "123:SECRET-token-value"


class FailingDatabase:
    async def run(self, function, *args):
        raise sqlite3.OperationalError(f"disk I/O error near {TOKEN}")


class EmptyDatabase:
    async def run(self, function, *args):
        return set(), None


class Storage:
    def processed_memory(self, since):
        raise AssertionError("called through the fake database thread only")


def test_a_replay_that_fails_at_start_writes_its_failure_then_raises(tmp_path):
    report = tmp_path / "run" / "replay.json"
    report.parent.mkdir()
    journal = tmp_path / "journal"
    with pytest.raises(sqlite3.OperationalError):
        asyncio.run(replay_at_start(TOKEN, journal, Storage(), FailingDatabase(), report))
    assert TOKEN not in report.read_text(), "the token never reaches the report"
    assert json.loads(report.read_text()) == {
        "error": "OperationalError: disk I/O error near [token]"
    }
    outcome = read_replay_report(report)
    assert outcome is not None and not outcome.ok
    assert "the bot's replay at its start failed: OperationalError" in outcome.summary()


def test_a_replay_with_nothing_to_do_reports_zero(tmp_path):
    report = tmp_path / "replay.json"
    asyncio.run(replay_at_start(TOKEN, tmp_path / "journal", Storage(), EmptyDatabase(), report))
    outcome = read_replay_report(report)
    assert outcome is not None and outcome.ok and outcome.replayed == 0
