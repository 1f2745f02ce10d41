import os
from pathlib import Path

import pytest

from tests.helpers import tmpfs
from watchdog.data.disk import is_persistent, mount_point, read_disk


def test_mount_point_of_a_path_that_does_not_exist_yet(tmp_path):
    assert mount_point(tmp_path / "not" / "yet") == mount_point(tmp_path)


def test_the_root_filesystem_is_not_persistent():
    assert mount_point(Path("/")) == Path("/")
    assert not is_persistent(Path("/"))


def test_reading_reports_usage(tmp_path):
    reading = read_disk(tmp_path)
    assert 0 <= reading.percent <= 100
    assert reading.total_bytes > 0


@pytest.fixture
def mounted_tmpfs(tmp_path):
    with tmpfs(tmp_path / "disk", "8m") as target:
        yield target


def test_a_mounted_disk_is_persistent(mounted_tmpfs):
    data_dir = mounted_tmpfs / "data"
    assert os.path.ismount(mounted_tmpfs)
    assert mount_point(data_dir) == mounted_tmpfs
    assert is_persistent(data_dir)
    assert read_disk(data_dir).total_bytes == 8 * 1024 * 1024
