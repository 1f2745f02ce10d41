"""The bot's replay report is read like every file from outside: a clear outcome, never a crash;
a file that is not a report is set aside, never trusted."""

from __future__ import annotations

import json
import os

import pytest

from watchdog.data.replay_report import read_replay_report


def test_a_good_report_reads_back_once(tmp_path):
    path = tmp_path / "replay.json"
    path.write_text(json.dumps({"replayed": 7, "erasures": 1, "problems": ["cut"], "seconds": 0.5}))
    outcome = read_replay_report(path)
    assert outcome is not None and outcome.ok
    assert outcome.replayed == 7 and outcome.problems == ["cut"] and outcome.seconds == 0.5
    assert (
        outcome.summary()
        == "replayed 7 updates from the journal and 1 erasures (1 journal problems)"
    )
    assert not path.exists(), "consumed: a later bot's report is never confused with it"
    assert read_replay_report(path) is None, "no report (yet) is no outcome"


def test_a_failure_the_bot_reports_is_a_failed_replay(tmp_path):
    path = tmp_path / "replay.json"
    path.write_text(json.dumps({"error": "OperationalError: disk I/O error"}))
    outcome = read_replay_report(path)
    assert outcome is not None and not outcome.ok
    assert outcome.summary() == (
        "the journal was not replayed: the bot's replay at its start failed: "
        "OperationalError: disk I/O error"
    )


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ("{not json", "cannot be read"),
        (b"\xff\xfe", "cannot be read"),
        ("[1, 2]", "not a replay report"),
        ('{"replayed": -1}', "not a replay report"),
        ('{"replayed": true}', "not a replay report"),
        ('{"error": 12}', "not a replay report"),
        ("x" * ((1 << 20) + 1), "over"),
    ],
)
def test_a_foreign_or_corrupt_report_is_set_aside_and_not_trusted(tmp_path, content, why):
    path = tmp_path / "replay.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    outcome = read_replay_report(path)
    assert outcome is not None and not outcome.ok and why in outcome.detail
    assert outcome.summary().startswith("the journal was not replayed")
    assert not path.exists()
    kept = tmp_path / "replay.json.rejected"
    assert kept.read_bytes() == (content if isinstance(content, bytes) else content.encode())


def test_a_report_that_is_a_link_or_a_fifo_is_not_followed(tmp_path):
    secret = tmp_path / "elsewhere.json"
    secret.write_text(json.dumps({"replayed": 5}))
    path = tmp_path / "replay.json"
    path.symlink_to(secret)
    outcome = read_replay_report(path)
    assert outcome is not None and not outcome.ok
    assert secret.exists() and (tmp_path / "replay.json.rejected").is_symlink()
    os.mkfifo(path)
    outcome = read_replay_report(path)  # would block forever if opened for reading plainly
    assert outcome is not None and not outcome.ok and "not a regular file" in outcome.detail
