"""What the snapshot worker answers is checked before anything is committed (``data.maker``)."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from watchdog.data.catalogue import Manifest
from watchdog.data.maker import _answer
from watchdog.data.snapshot import SnapshotError

PLAIN = Path("/data/backups/manual/.tmp-20261201T000000Z-manual-abcdef.db")
ID = "20261201T000000Z-manual-abcdef"


def _manifest(backup_id: str = ID) -> dict:
    digest = "ab" * 32
    manifest = Manifest(
        id=backup_id,
        tier="manual",
        reason="test",
        created_at=1_796_000_000.0,
        size_bytes=4096,
        sha256=digest,
        file=f"{backup_id}.db",
        file_size=4096,
        file_sha256=digest,
        compression=None,
        rows={"users": 1},
        sqlite_version="3.40.1",
        app_version="t",
        duration_s=0.5,
        checked_sha256=digest,
    )
    return json.loads(manifest.to_json())


def _line(answer: dict) -> bytes:
    return json.dumps(answer).encode() + b"\n"


def test_a_sound_answer_gives_the_manifest_and_the_file():
    manifest, data = _answer(
        _line({"manifest": _manifest(), "data": str(PLAIN)}), b"", 0, ID, PLAIN
    )
    assert manifest.id == ID and data == PLAIN


@pytest.mark.parametrize(
    "answer",
    [
        {"manifest": _manifest("20261201T000000Z-manual-ffffff"), "data": str(PLAIN)},
        {"manifest": _manifest(), "data": "/etc/passwd"},
        {"manifest": {**_manifest(), "sha256": "not a digest"}, "data": str(PLAIN)},
        {"manifest": _manifest()},
    ],
    ids=["another backup", "a file elsewhere", "a malformed manifest", "no file"],
)
def test_an_answer_for_something_else_is_refused(answer):
    with pytest.raises(SnapshotError):
        _answer(_line(answer), b"", 0, ID, PLAIN)


def test_errors_keep_their_kind():
    with pytest.raises(SnapshotError, match="failed integrity_check"):
        _answer(
            _line({"error": "the copy failed integrity_check: x", "kind": "snapshot"}),
            b"",
            0,
            ID,
            PLAIN,
        )
    with pytest.raises(OSError, match="I/O error"):
        _answer(_line({"error": "I/O error: disk", "kind": "os"}), b"", 0, ID, PLAIN)


def test_no_answer_says_how_the_worker_ended():
    with pytest.raises(SnapshotError, match="SIGBUS"):
        _answer(b"", b"", -signal.SIGBUS, ID, PLAIN)
    with pytest.raises(SnapshotError, match=r"code 1.*Boom"):
        _answer(b"half a li", b"Traceback\nValueError: Boom\n", 1, ID, PLAIN)
