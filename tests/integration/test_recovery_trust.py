"""A backup is input from outside the trust boundary: a real stack must refuse a forged local
backup, never take a future-dated one for the newest, and walk every offsite backup on a lost
disk until one proves itself."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pyrage import x25519

from conf.layout import DataLayout
from tests import dbgen, forge
from tests.fakes.git_server import FakeGitServer
from tests.helpers import TEST_RETENTION, base_env, free_port, get_json, wait_until
from tests.integration.test_recovery import ADMIN, checkpoint, prepared, remove_companions, stack
from watchdog.data.backups import BackupKeeper
from watchdog.data.catalogue import Backup, Catalogue
from watchdog.offsite import OffsiteStore, cache_dir_for

pytestmark = pytest.mark.integration
WATCHDOG = [sys.executable, "-m", "watchdog", "run"]
TOKEN = "ghp_TrustTestToken0123456789abcdef"
__all__ = ["stack"]  # the fixture, shared with test_recovery


def schema_names(database: Path) -> set[str]:
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5) as connection:
        return {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}


def newest_plain(layout: DataLayout) -> Backup:
    """The newest uncompressed backup, made the newest of all: a compressed (weekly) one that a
    busy machine took after it is taken out of the catalogue, so recovery meets this one first."""
    backups = Catalogue(layout).scan()
    plain = [b for b in backups if b.manifest.compression is None][-1]
    for later in backups[backups.index(plain) + 1 :]:
        later.data_path.unlink()
        later.manifest_path.unlink()
    return plain


def damage_live(database: Path) -> None:
    checkpoint(database)
    remove_companions(database)
    database.write_bytes(b"garbage" * 100)


def cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "watchdog", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_a_forged_local_backup_is_skipped_and_named(stack):
    rows, _ = prepared(stack)
    forged = forge.rewrite(newest_plain(stack.layout), forge.PLANTED_VIEW, forge.PLANTED_TRIGGER)
    damage_live(stack.database)
    stack.start()
    stack.assert_recovered(rows)
    last = stack.health()["recovery"]["last"]
    assert last["restored_from"] != forged.id
    refusal = next(r for r in last["rejected"] if forged.id in r)
    assert "extra trigger messages_copy" in refusal and "extra view everyone" in refusal
    assert {"messages_copy", "everyone"}.isdisjoint(schema_names(stack.database))
    alert = stack.fake.wait_for_sent(ADMIN, contains="restored", timeout=15)
    assert forged.id in alert["text"] and "extra trigger messages_copy" in alert["text"]


def test_a_future_dated_backup_is_not_the_newest(stack):
    rows, _ = prepared(stack)
    today = newest_plain(stack.layout)
    ahead = forge.copy_dated(today, time.time() + 86400).stem
    damage_live(stack.database)
    stack.start()
    stack.assert_recovered(rows)
    last = stack.health()["recovery"]["last"]
    assert last["restored_from"] != ahead
    assert not any(ahead in rejected for rejected in last["rejected"]), "never even tried"
    done = cli(stack.env, "restore", "latest", "--yes")  # through the running watchdog
    assert done.returncode == 0, done.stdout + done.stderr
    assert "restored backup" in done.stdout and ahead not in done.stdout


# -- offsite: a lost disk, the newest package damaged ------------------------------------------


def offsite_site(
    tmp_path: Path, url: str
) -> tuple[DataLayout, BackupKeeper, x25519.Identity, OffsiteStore]:
    """A machine with a bot database, its keeper, an age identity and a store on ``url``."""
    identity = x25519.Identity.generate()
    root = tmp_path / "site"
    layout = DataLayout(root, root / "erixcast.db")
    layout.ensure()
    dbgen.create_bot(layout.database, 200_000)
    keeper = BackupKeeper(layout, keep=TEST_RETENTION, min_free_bytes=0, app_version="t")
    store = OffsiteStore(
        url,
        "db-backups",
        cache_dir_for(root),
        token=TOKEN,
        age_identity=str(identity),
        allow_plaintext=False,
        keep=3,
        timeout=30.0,
    )
    return layout, keeper, identity, store


@pytest.fixture
def branch(tmp_path):
    """An offsite branch with two backups of a bot database: the newest one's database does not
    match its manifest's sha256 (damaged before it was packed)."""
    with FakeGitServer(tmp_path / "server", TOKEN) as server:
        url = server.url(server.create_repo("backups.git"))
        _, keeper, identity, store = offsite_site(tmp_path, url)
        now = time.time()
        good = keeper.take("hourly", "test", now - 120).backup
        damaged = keeper.take("hourly", "test", now - 60).backup
        assert good is not None and damaged is not None
        data = bytearray(damaged.data_path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        damaged.data_path.write_bytes(bytes(data))
        store.push(good)
        store.push(damaged)
        assert [entry.id for entry in store.list()] == [damaged.id, good.id]
        env = {
            "BACKUP_GIT_URL": url,
            "BACKUP_GIT_TOKEN": TOKEN,
            "BACKUP_AGE_KEY": str(identity),
            "BACKUP_GIT_TIMEOUT": "30",
        }
        yield env, good, damaged


def test_lost_disk_restore_from_git_latest_takes_the_older_good_one(tmp_path, branch):
    extra, good, damaged = branch
    data = tmp_path / "data"
    env = base_env(data, free_port(), **extra)
    done = cli(env, "restore", "latest", "--from-git", "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"restored offsite backup {good.id}" in done.stdout
    assert damaged.id in done.stdout and "sha256" in done.stdout
    with sqlite3.connect(f"file:{data / 'erixcast.db'}?mode=ro", uri=True) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert connection.execute("SELECT count(*) FROM users").fetchone()[0] == 1000


def test_lost_disk_recovery_walks_every_offsite_backup(processes, tmp_path, fake_api, branch):
    extra, good, damaged = branch
    data = tmp_path / "data"
    port = free_port()
    env = base_env(
        data,
        port,
        TELEGRAM_BOT_TOKEN=fake_api.token,
        TELEGRAM_API_URL=fake_api.base_url,
        ADMIN_IDS=str(ADMIN),
        **extra,
    )
    processes.start("watchdog", WATCHDOG, env)

    def health() -> dict:
        return get_json(f"http://127.0.0.1:{port}/health")[1]

    doc = wait_until(
        lambda: (d := health())["recovery"]["count"] and d["bot"]["status"] == "running" and d,
        timeout=90,
        what="recovery from the branch",
    )
    last = doc["recovery"]["last"]
    assert last["source"] == "offsite" and last["restored_from"] == good.id
    assert len(last["rejected"]) == 1
    assert last["rejected"][0].startswith(f"offsite backup {damaged.id}: ")
    assert "sha256" in last["rejected"][0]
    assert doc["database"]["integrity"] == "ok"
    alert = fake_api.wait_for_sent(ADMIN, contains="restored", timeout=15)
    assert damaged.id in alert["text"]


def test_a_forged_newest_package_is_refused_and_the_older_genuine_one_restored(
    processes, tmp_path, fake_api
):
    """An attacker with push access plants a package with the bot's schema plus a trigger,
    encrypted to the public key every package names, dated in the future, MAC'd under a key of
    their own. A lost-disk start refuses it before decryption, restores the genuine one, and no
    planted trigger reaches the live database."""
    from tests.integration.test_offsite import Site
    from tests.integration.test_offsite_auth import forged_package, plant
    from watchdog.offsite.auth import MacKey

    with FakeGitServer(tmp_path / "server", TOKEN) as server:
        repo = server.create_repo("backups.git")
        url = server.url(repo)
        layout, keeper, identity, store = offsite_site(tmp_path, url)
        site = Site(layout.root, layout, keeper, identity, time.time() - 3600)
        genuine = site.backup()
        store.push(genuine)
        forged_id = "20991231T000000Z-daily-evil99"
        files, _ = forged_package(site, tmp_path, forged_id, MacKey(b"\x07" * 32), time.time())
        plant(repo, forged_id, files)

        data = tmp_path / "data"
        port = free_port()
        env = base_env(
            data,
            port,
            TELEGRAM_BOT_TOKEN=fake_api.token,
            TELEGRAM_API_URL=fake_api.base_url,
            ADMIN_IDS=str(ADMIN),
            BACKUP_GIT_URL=url,
            BACKUP_GIT_TOKEN=TOKEN,
            BACKUP_AGE_KEY=str(identity),
            BACKUP_GIT_TIMEOUT="30",
        )
        processes.start("watchdog", WATCHDOG, env)
        doc = wait_until(
            lambda: (
                (d := get_json(f"http://127.0.0.1:{port}/health")[1])["recovery"]["count"]
                and d["bot"]["status"] == "running"
                and d
            ),
            timeout=90,
            what="recovery from the branch",
        )
        last = doc["recovery"]["last"]
        assert last["source"] == "offsite" and last["restored_from"] == genuine.id
        assert any(forged_id in reason and "MAC" in reason for reason in last["rejected"])
        with sqlite3.connect(f"file:{data / 'erixcast.db'}?mode=ro", uri=True) as connection:
            triggers = [
                row[0]
                for row in connection.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'trigger'"
                )
            ]
        assert "planted" not in triggers
        assert (
            forged_id
            in subprocess.run(
                [
                    "git",
                    "--git-dir",
                    str(repo),
                    "ls-tree",
                    "-r",
                    "--name-only",
                    "refs/heads/db-backups",
                ],
                capture_output=True,
                text=True,
                timeout=30,
            ).stdout
        ), "never deleted by us"
