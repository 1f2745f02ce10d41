"""The one copy-and-hash (``watchdog.data.hashcopy``), on real files: the digest is of the bytes
the target holds, read back (so a write that went wrong cannot pass for the source's bytes), in
the kernel's copy and in the plain fallback; and an install whose copy does not match the
manifest's sha256 is refused, the live file untouched (a compressed backup is decompressed, not
copied: ``test_check_once`` covers its stored bytes no longer matching)."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from conf.layout import DataLayout
from tests import dbgen
from tests.helpers import TEST_RETENTION
from watchdog.data import hashcopy
from watchdog.data.backups import BackupKeeper
from watchdog.data.cleanstop import record_path
from watchdog.data.recovery import RestoreError
from watchdog.data.restore import restore_requested


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "source.bin"
    path.write_bytes(os.urandom(3 * hashcopy.COPY_CHUNK + 12345))  # several chunks, a tail
    return path


@pytest.fixture
def plain_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hashcopy, "_copy_range", lambda source, target: -1)


def _flip_one_written_byte(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first chunk reaches the target with one byte changed (a write gone wrong)."""
    real = hashcopy._copy_range
    flipped: list[int] = []

    def faulty(source: int, target: int) -> int:
        count = real(source, target)
        if count > 0 and not flipped:
            byte = os.pread(source, 1, 1000)
            os.pwrite(target, bytes([byte[0] ^ 0x01]), 1000)
            flipped.append(1000)
        return count

    monkeypatch.setattr(hashcopy, "_copy_range", faulty)


@pytest.mark.parametrize("kernel", [True, False], ids=["copy_file_range", "read-write"])
def test_the_copy_is_the_source_and_its_digest_the_targets(source, tmp_path, monkeypatch, kernel):
    if not kernel:
        monkeypatch.setattr(hashcopy, "_copy_range", lambda s, t: -1)
    target = tmp_path / "target.bin"
    target.write_bytes(b"an older, longer leftover" * 100_000)
    digest = hashcopy.copy_hashed(source, target)
    assert target.read_bytes() == source.read_bytes()
    assert digest == _sha(source) == _sha(target)


def test_the_header_is_set_before_anything_is_hashed(source, tmp_path, plain_only):
    target = tmp_path / "target.bin"
    digest = hashcopy.copy_hashed(source, target, header=b"\x01\x01")
    written = target.read_bytes()
    assert written[18:20] == b"\x01\x01"
    assert written[:18] + written[20:] == source.read_bytes()[:18] + source.read_bytes()[20:]
    assert digest == _sha(target)


def test_the_digest_is_of_what_the_target_holds_not_what_was_read(source, tmp_path, monkeypatch):
    _flip_one_written_byte(monkeypatch)
    target = tmp_path / "target.bin"
    digest = hashcopy.copy_hashed(source, target)
    assert target.read_bytes() != source.read_bytes()
    assert digest == _sha(target) != _sha(source)


def test_a_copy_told_to_stop_stops(source, tmp_path):
    with pytest.raises(hashcopy.CopyAbandoned):
        hashcopy.copy_hashed(source, tmp_path / "target.bin", lambda: False)


def test_an_install_whose_copy_differs_from_the_manifest_is_refused(tmp_path, monkeypatch):
    layout = DataLayout(tmp_path / "data", tmp_path / "data" / "erixcast.db")
    layout.ensure()
    dbgen.create_bot(layout.database, 600_000)
    keeper = BackupKeeper(layout, keep=TEST_RETENTION, min_free_bytes=0, app_version="t")
    backup = keeper.take("manual", "test", time.time() - 60).backup  # plain: copied at install
    assert backup is not None
    stored = backup.data_path.read_bytes()
    before = layout.database.read_bytes()
    _flip_one_written_byte(monkeypatch)
    with pytest.raises(RestoreError, match=r"sha256 mismatch.*nothing changed"):
        restore_requested(layout, "latest", time.time())
    assert layout.database.read_bytes() == before
    assert not record_path(layout).exists()
    assert not list(layout.database.parent.glob(".tmp-restore-*"))
    assert backup.data_path.read_bytes() == stored, "the stored backup itself is sound"
