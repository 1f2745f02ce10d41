"""Erasure that lasts on PostgreSQL: a user erased with /deleteme (the real bot on a real
server) never comes back when an older dump is restored into an empty database through the
real CLI (``python -m watchdog restore ID --to …``) — whichever copy of the erasure record is
left: the live database's table, a newer dump's, or the copy the backup leader keeps beside the
backups. A user who was not erased comes back whole."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from pyrage import x25519

from conf.layout import DataLayout
from tests.fakes.telegram_api import FakeTelegramAPI
from tests.helpers import ProcessPool
from tests.integration.test_bot_features import BotUnderTest
from tests.pg import PASSWORD, PostgresServer
from watchdog.data import server as pg
from watchdog.data.backups import BackupKeeper
from watchdog.data.kinds import PostgresDatabase
from watchdog.offsite import OffsiteStore, cache_dir_for

pytestmark = pytest.mark.integration

KEPT, ERASED = 31, 32


def people(url: str) -> tuple[set[int], list[str]]:
    with psycopg.connect(url) as connection:
        users = {int(row[0]) for row in connection.execute("SELECT id FROM users")}
        notes = [str(row[0]) for row in connection.execute("SELECT text FROM notes")]
    return users, notes


def restore(
    data: Path, live_url: str, *args: str, **extra: str
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "ENV_FILE": os.devnull,
        "DATA_DIR": str(data),
        "DATABASE_URL": live_url,
        **extra,
    }
    return subprocess.run(
        [sys.executable, "-m", "watchdog", "restore", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )


def remember(fake: FakeTelegramAPI, user: int, text: str) -> None:
    before = len(fake.sent(user))
    fake.send_text(user, f"/remember {text}", first_name=f"U{user}")
    fake.wait_for_sent(user, after=before, timeout=60)


@pytest.mark.timeout(600)
def test_an_erased_user_never_comes_back_from_an_older_dump(
    processes: ProcessPool, fake_api: FakeTelegramAPI, postgres: PostgresServer, tmp_path: Path
) -> None:
    live_name = postgres.create_database()
    live = postgres.url(live_name)
    bot = BotUnderTest(processes, fake_api, tmp_path / "bot", DATABASE_URL=live)
    bot.start()
    remember(fake_api, KEPT, "kept words")
    remember(fake_api, ERASED, "private thing")
    assert people(live)[0] == {KEPT, ERASED}

    data = tmp_path / "data"  # the backup leader's DATA_DIR
    layout = DataLayout(data, data / "erixcast.db")
    layout.ensure()
    kind = PostgresDatabase(pg.Server.from_url(live))
    keeper = BackupKeeper(
        layout, keep={"manual": 5}, min_free_bytes=0, app_version="t", source=kind
    )
    older = keeper.take("manual", "before the erasure", time.time() - 60).backup
    assert older is not None

    fake_api.send_text(ERASED, "/deleteme", first_name=f"U{ERASED}")
    question = fake_api.wait_for_sent(ERASED, contains="Are you sure", timeout=30)
    fake_api.send_callback(ERASED, "deleteme:yes", question["result"], first_name=f"U{ERASED}")
    fake_api.wait_for_sent(ERASED, contains="Done: I erased", timeout=30)
    assert people(live) == ({KEPT}, ["kept words"])
    with psycopg.connect(live) as connection:
        recorded = connection.execute("SELECT user_id FROM erasures").fetchall()
    assert recorded == [(ERASED,)], "the erasure is recorded in its own transaction"

    def restored_into_empty(source: str) -> str:
        target = postgres.url(postgres.create_database())
        done = restore(data, live, older.id, "--to", target)
        assert done.returncode == 0, f"{source}: {done.stderr}"
        assert "made again for 1 users" in done.stdout, (source, done.stdout)
        assert PASSWORD not in done.stdout + done.stderr
        assert people(target) == ({KEPT}, ["kept words"]), f"{source}: the erased user is back"
        with psycopg.connect(target) as connection:
            carried = connection.execute("SELECT user_id FROM erasures").fetchall()
        assert carried == [(ERASED,)], f"{source}: the restored database carries the record on"
        return target

    record_copies = (layout.backups / "erasures.jsonl", layout.journal / "erasures.jsonl")

    def forget_copies_on_disk() -> None:
        for path in record_copies:
            path.unlink(missing_ok=True)

    # 1. The live database still answers: its table holds the erasure.
    forget_copies_on_disk()
    restored_into_empty("the live database")

    # 2. The live database is gone; a newer dump (taken after the erasure) is in the catalogue.
    newer = keeper.take("manual", "after the erasure", time.time()).backup
    assert newer is not None and newer.manifest.extra["erasures"] == "1"
    assert bot.stop() == 0
    with psycopg.connect(postgres.url(), autocommit=True) as connection:
        connection.execute(f'DROP DATABASE "{live_name}"')
    forget_copies_on_disk()
    restored_into_empty("a newer dump")

    # Both dumps go offsite (an authenticated branch of a local bare repository).
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "--quiet", "--bare", str(remote)], check=True, timeout=30)
    identity = x25519.Identity.generate()
    store = OffsiteStore(
        str(remote),
        "db-backups",
        cache_dir_for(data),
        token=None,
        age_identity=str(identity),
        allow_plaintext=False,
        keep=5,
        timeout=30.0,
    )
    store.push(older)
    store.push(newer)

    # 3. The newer dump is gone too: the copy on the disk (healed by the last restore) remains.
    assert all(path.exists() for path in record_copies)
    newer.data_path.unlink()
    newer.manifest_path.unlink()
    restored_into_empty("the copy beside the backups")

    # A restore refused after pg_restore ran (counts other than the manifest's) erases too:
    # the database is not empty any more, and someone may use it all the same.
    manifest = json.loads(older.manifest_path.read_text())
    manifest["rows"]["notes"] += 1
    older.manifest_path.write_text(json.dumps(manifest))
    target = postgres.url(postgres.create_database())
    refused = restore(data, live, older.id, "--to", target)
    assert refused.returncode == 1 and "counts differ" in refused.stderr, refused.stderr
    assert people(target) == ({KEPT}, ["kept words"]), "a refused restore brought the user back"
    manifest["rows"]["notes"] -= 1
    older.manifest_path.write_text(json.dumps(manifest))

    # 4. The disk is lost (a new, empty DATA_DIR) and the live database with it: the older
    # dump comes from the branch, whose newest dump holds the erasure.
    lost = tmp_path / "new-disk"
    target = postgres.url(postgres.create_database())
    offsite = {
        "BACKUP_GIT_URL": str(remote),
        "BACKUP_AGE_KEY": str(identity),
        "BACKUP_GIT_TIMEOUT": "30",
    }
    done = restore(lost, live, older.id, "--from-git", "--to", target, **offsite)
    assert done.returncode == 0, done.stderr
    assert "made again for 1 users" in done.stdout, done.stdout
    assert people(target) == ({KEPT}, ["kept words"]), "the branch's newest dump was not read"

    # Without any copy, the older dump brings the user back: the copies above are what count.
    forget_copies_on_disk()
    target = postgres.url(postgres.create_database())
    done = restore(data, live, older.id, "--to", target)
    assert done.returncode == 0, done.stderr
    assert people(target)[0] == {KEPT, ERASED}
