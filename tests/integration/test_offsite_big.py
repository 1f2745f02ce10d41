"""A database over 100 MB goes offsite and comes back byte-identical, through split parts."""

from __future__ import annotations

import resource
import subprocess
import time

import pytest
from pyrage import x25519

from conf.layout import DataLayout
from tests import dbgen
from tests.fakes.git_server import FakeGitServer
from watchdog.data.backups import BackupKeeper
from watchdog.data.snapshot import sha256_of
from watchdog.offsite import OffsiteStore, cache_dir_for

pytestmark = pytest.mark.integration

TOKEN = "ghp_bigTestToken00000000000000000000000"
PART = 16 * 1024 * 1024


def test_a_database_over_100_mb_round_trips_through_parts(tmp_path):
    root = tmp_path / "data"
    layout = DataLayout(root, root / "erixcast.db")
    layout.ensure()
    dbgen.create(layout.database, 110_000_000)
    keeper = BackupKeeper(layout, keep={"daily": 7, "manual": 5}, min_free_bytes=0, app_version="t")
    backup = keeper.take("daily", "test", time.time()).backup
    assert backup is not None and backup.manifest.size_bytes > 100_000_000
    identity = x25519.Identity.generate()
    with FakeGitServer(tmp_path / "server", TOKEN) as server:
        repo = server.create_repo("backups.git")
        store = OffsiteStore(
            server.url(repo),
            "db-backups",
            cache_dir_for(root),
            token=TOKEN,
            age_identity=str(identity),
            allow_plaintext=False,
            keep=2,
            timeout=60,
            part_size=PART,
        )
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        entry = store.push(backup)
        assert entry.parts >= 2
        sizes = subprocess.run(
            ["git", "--git-dir", str(repo), "ls-tree", "-r", "-l", "refs/heads/db-backups"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout.split("\n")
        part_sizes = [int(line.split()[3]) for line in sizes if "/part-" in line]
        assert len(part_sizes) == entry.parts and max(part_sizes) <= PART
        dest = tmp_path / "restored.db"
        manifest = store.fetch(None, dest)
        rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert sha256_of(dest) == manifest.sha256 == sha256_of(backup.data_path)
    assert dest.stat().st_size == backup.manifest.size_bytes
    # streaming: peak memory grew by far less than the database (ru_maxrss is in KiB)
    assert (rss_after - rss_before) * 1024 < 50_000_000
