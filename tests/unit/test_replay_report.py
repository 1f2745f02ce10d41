"""The replay's report is read like every file from outside: a clear outcome, never a crash."""

from __future__ import annotations

import json

import pytest

from watchdog.data.replay_report import read_replay_report


def test_a_good_report_reads_back(tmp_path):
    path = tmp_path / "replay.json"
    path.write_text(json.dumps({"replayed": 7, "erasures": 1, "problems": ["cut"], "seconds": 0.5}))
    outcome = read_replay_report(path, 0)
    assert outcome.ok and outcome.replayed == 7 and outcome.problems == ["cut"]
    assert (
        outcome.summary()
        == "replayed 7 updates from the journal and 1 erasures (1 journal problems)"
    )


@pytest.mark.parametrize(
    ("content", "code", "why"),
    [
        (None, 0, "cannot be read"),
        ("{not json", 0, "cannot be read"),
        ("[1, 2]", 0, "not a JSON object"),
        ('{"replayed": -1}', 0, "no count 'replayed'"),
        ('{"replayed": true}', 0, "no count 'replayed'"),
        ('{"replayed": 1}', 65, "exited with code 65"),
        ('{"replayed": 1}', None, "stopped"),
    ],
)
def test_a_bad_report_or_a_failed_run_is_a_failed_replay(tmp_path, content, code, why):
    path = tmp_path / "replay.json"
    if content is not None:
        path.write_text(content)
    outcome = read_replay_report(path, code)
    assert not outcome.ok and why in outcome.detail
    assert outcome.summary().startswith("the journal was not replayed")
