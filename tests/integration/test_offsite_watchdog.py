"""The running watchdog with an offsite store: pushes on schedule, reports, and brings a lost
disk back from the branch."""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import datetime

import psutil
import pytest
from pyrage import x25519

from tests.fakes.git_server import FakeGitServer
from tests.helpers import base_env, free_port, get_json, wait_until

pytestmark = pytest.mark.integration
WATCHDOG = [sys.executable, "-m", "watchdog", "run"]
TOKEN = "ghp_OffsiteTestToken0123456789"


@pytest.fixture
def git_server(tmp_path):
    with FakeGitServer(tmp_path / "server", TOKEN) as server:
        yield server


def users(database) -> set[int]:
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5) as connection:
        return {row[0] for row in connection.execute("SELECT id FROM users")}


def test_pushes_offsite_and_a_lost_disk_comes_back_from_the_branch(
    processes, tmp_path, fake_api, git_server
):
    identity = x25519.Identity.generate()
    url = git_server.url(git_server.create_repo("backups.git"))
    data = tmp_path / "data"
    port = free_port()
    env = base_env(
        data,
        port,
        TELEGRAM_BOT_TOKEN=fake_api.token,
        TELEGRAM_API_URL=fake_api.base_url,
        BACKUP_GIT_URL=url,
        BACKUP_GIT_TOKEN=TOKEN,
        BACKUP_AGE_KEY=str(identity),
        BACKUP_GIT_TIMEOUT="30",
        BACKUP_OFFSITE_EVERY="1s",
        JOURNAL_OFFSITE_EVERY="1s",
    )

    def health() -> dict:
        return get_json(f"http://127.0.0.1:{port}/health")[1]

    proc = processes.start("watchdog", WATCHDOG, env)
    wait_until(lambda: health()["bot"]["status"] == "running", timeout=30)
    for uid in (11, 12, 13):
        fake_api.send_text(uid, "/start", first_name=f"U{uid}")
        fake_api.wait_for_sent(uid, timeout=20)
    wait_until(lambda: {11, 12, 13} <= users(data / "erixcast.db"), timeout=20)
    # A backup taken now holds the users (the scheduled ones may predate them on a busy
    # machine); it, or a scheduled one begun after it, goes offsite next.
    taken = subprocess.run(
        [sys.executable, "-m", "watchdog", "backup"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert taken.returncode == 0, taken.stderr
    manual = taken.stdout.split()[1]
    manual_at = json.loads((data / "backups" / "manual" / f"{manual}.json").read_text())

    def pushed_after_the_users() -> dict | None:
        doc = health()
        newest = doc["backups"]["offsite"]["newest_id"]
        manifest = next((data / "backups").glob(f"*/{newest}.json"), None) if newest else None
        at = json.loads(manifest.read_text())["created_at"] if manifest else None
        return doc if at is not None and at >= manual_at["created_at"] else None

    doc = wait_until(pushed_after_the_users, timeout=90, what="the backup with the users pushed")
    # Not the check's status: with BACKUP_OFFSITE_EVERY=1s, "older than twice the interval"
    # is a matter of how busy the machine is. What matters: pushes work, nothing refused.
    offsite = doc["backups"]["offsite"]
    assert (offsite["failures"], offsite["last_error"], offsite["refused"]) == (0, None, [])
    listed = subprocess.run(
        [sys.executable, "-m", "watchdog", "list", "--offsite", "--json"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert listed.returncode == 0, listed.stderr
    entries = json.loads(listed.stdout)
    assert entries and all(entry["encrypted"] for entry in entries)
    pushed = {entry["id"] for entry in entries}
    # The backup with the users on the branch: the manual one, or a scheduled one begun after it
    # that was pushed in its place (the push takes the newest).
    assert offsite["newest_id"] in pushed and all(entry["authenticated"] for entry in entries)

    # Make sure the offsite copy holds our users, then lose the disk whole.
    wait_until(lambda: health()["backups"]["offsite"]["newest_id"] in pushed, timeout=5)
    # A user after every backup: only the journal on the branch knows them.
    sent_at = time.time()  # the journal entry's time is when the bot got it: later than this
    fake_api.send_text(14, "hello after the backups", first_name="U14")
    wait_until(lambda: 14 in users(data / "erixcast.db"), timeout=20)
    wait_until(
        lambda: (
            (at := health()["journal"]["offsite"]["pushed_through"])
            and datetime.fromisoformat(at).timestamp() >= sent_at - 1
        ),
        timeout=60,
        what="the journal with user 14 pushed",
    )

    # Whether the branch's newest database predates user 14 (a scheduled backup running late on
    # a busy machine may have taken them after all): then only the journal can bring them back.
    newest = health()["backups"]["offsite"]["newest_id"]
    newest_manifest = next((data / "backups").glob(f"*/{newest}.json"))
    only_in_journal = json.loads(newest_manifest.read_text())["created_at"] < sent_at
    bot = psutil.Process(health()["bot"]["pid"])
    proc.popen.send_signal(signal.SIGKILL)
    proc.wait(10)
    bot.wait(30)  # the bot follows its watchdog; wait, so it is not closing files under rmtree
    shutil.rmtree(data)

    processes.start("watchdog", WATCHDOG, env)
    doc = wait_until(
        lambda: (d := health())["recovery"]["count"] and d["bot"]["status"] == "running" and d,
        timeout=90,
        what="recovery from the branch",
    )
    assert doc["recovery"]["last"]["source"] == "offsite"
    assert doc["database"]["integrity"] == "ok"
    restored = users(data / "erixcast.db")
    assert restored & {11, 12, 13}, "the old users are back"
    assert 14 in restored, "the user after the backups is back"
    if only_in_journal:
        assert doc["recovery"]["last"]["replay"]["replayed"] >= 1, "brought back by the journal"
    sent = len(fake_api.sent(12))
    fake_api.send_text(12, "/start", first_name="U12")
    assert "Welcome back" in fake_api.wait_for_sent(12, timeout=20, after=sent)["text"]
    texts = [p.read_text(errors="replace") for p in (data / "logs").glob("*.log")]
    texts += [p.output() for p in processes.started]
    assert not any(TOKEN in text for text in texts)
    _, stats = get_json(f"http://127.0.0.1:{port}/stats")
    assert TOKEN not in json.dumps(stats)


def test_a_bad_token_is_reported_and_local_backups_go_on(processes, tmp_path, git_server):
    from tests import dbgen

    url = git_server.url(git_server.create_repo("backups.git"))
    data = tmp_path / "data"
    data.mkdir()
    dbgen.create(data / "erixcast.db", 200_000)
    port = free_port()
    env = base_env(
        data,
        port,
        BACKUP_GIT_URL=url,
        BACKUP_GIT_TOKEN="wrong-token-value",
        BACKUP_AGE_KEY=str(x25519.Identity.generate()),
        BACKUP_GIT_TIMEOUT="10",
    )
    proc = processes.start("watchdog", WATCHDOG, env)
    doc = wait_until(
        lambda: (
            (d := get_json(f"http://127.0.0.1:{port}/health")[1])["backups"]["offsite"]["failures"]
            and d
        ),
        timeout=60,
    )
    assert doc["checks"]["offsite"]["status"] == "degraded"
    assert doc["backups"]["tiers"]["hourly"] is not None, "local backups go on"
    assert "wrong-token-value" not in json.dumps(doc)
    proc.popen.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    assert "wrong-token-value" not in proc.output()
