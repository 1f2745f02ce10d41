"""Erasure that lasts, under the whole stack: a user erased with /deleteme stays erased through
an operator's restore of an older backup (replayed, and with --no-replay) and a lost disk
brought back from the offsite branch (an authenticated git server), whose newest database
package predates the erasure."""

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

from tests import forge
from tests.fakes.git_server import FakeGitServer
from tests.helpers import base_env, free_port, get_json, wait_until
from tests.integration.test_recovery import Stack

pytestmark = pytest.mark.integration
WATCHDOG = [sys.executable, "-m", "watchdog", "run"]
TOKEN = "ghp_ErasureTestToken0123456789"
KEPT, ERASED = 21, 22
SECRET = "private thing"


@pytest.fixture
def git_server(tmp_path):
    with FakeGitServer(tmp_path / "server", TOKEN) as server:
        yield server


def people(database) -> tuple[set[int], list[str]]:
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5) as connection:
        users = {row[0] for row in connection.execute("SELECT id FROM users")}
        texts = [str(row[0]) for row in connection.execute("SELECT text FROM messages")]
    return users, texts


@pytest.mark.timeout(600)
def test_an_erased_user_never_comes_back_from_a_restore_or_a_lost_disk(
    processes, tmp_path, fake_api, git_server
):
    data, port = tmp_path / "data", free_port()
    database = data / "erixcast.db"
    env = base_env(
        data,
        port,
        TELEGRAM_BOT_TOKEN=fake_api.token,
        TELEGRAM_API_URL=fake_api.base_url,
        BACKUP_GIT_URL=git_server.url(git_server.create_repo("backups.git")),
        BACKUP_GIT_TOKEN=TOKEN,
        BACKUP_AGE_KEY=str(x25519.Identity.generate()),
        BACKUP_GIT_TIMEOUT="30",
        BACKUP_OFFSITE_EVERY="1s",
        JOURNAL_OFFSITE_EVERY="1s",
    )

    def health() -> dict:
        return get_json(f"http://127.0.0.1:{port}/health")[1]

    def cli(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "watchdog", *args],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def running(**extra: str):
        proc = processes.start("watchdog", WATCHDOG, {**env, **extra})
        wait_until(lambda: health()["bot"]["status"] == "running", timeout=60, what="bot up")
        return proc

    def stop(proc) -> None:
        proc.popen.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0

    proc = running()
    for uid, text in ((KEPT, "hello"), (ERASED, SECRET)):
        fake_api.send_text(uid, "/start", first_name=f"U{uid}")
        fake_api.wait_for_sent(uid, timeout=30)
        fake_api.send_text(uid, text, first_name=f"U{uid}")
    wait_until(lambda: SECRET in people(database)[1], timeout=30, what="the rows committed")
    old = cli("backup").split()[1]  # "backup <id> (manual): …": holds the user to be erased
    old_at = json.loads(next((data / "backups").glob(f"*/{old}.json")).read_text())["created_at"]

    def pushed_old() -> bool:
        newest = health()["backups"]["offsite"]["newest_id"]
        manifest = next((data / "backups").glob(f"*/{newest}.json"), None) if newest else None
        return bool(manifest) and json.loads(manifest.read_text())["created_at"] >= old_at

    wait_until(pushed_old, timeout=120, what="a backup holding the user pushed offsite")
    stop(proc)
    # From now on no database goes offsite: the branch's newest holds the user to be erased.
    offsite_every = "24h"
    proc = running(BACKUP_OFFSITE_EVERY=offsite_every)
    fake_api.send_text(ERASED, "/deleteme", first_name="U22")
    question = fake_api.wait_for_sent(ERASED, contains="Are you sure", timeout=30)
    fake_api.send_callback(ERASED, "deleteme:yes", question["result"], first_name="U22")
    fake_api.wait_for_sent(ERASED, contains="Done: I erased", timeout=30)
    erased_at = time.time()
    wait_until(lambda: ERASED not in people(database)[0], timeout=30, what="the erasure committed")

    # 1. An operator's restore of the older backup, replaying the journal after it.
    for flags in ((), ("--no-replay",)):
        before = health()["bot"]["pid"]
        said = cli("restore", old, "--yes", *flags)
        assert f"restored backup {old}" in said
        assert "erasures: 1 in the record, made again for 1 users" in said  # before the bot
        wait_until(
            lambda: (d := health())["bot"]["status"] == "running" and d["bot"]["pid"] != before,  # noqa: B023
            timeout=60,
            what="the bot relaunched on the restored database",
        )
        users, texts = people(database)
        assert ERASED not in users and SECRET not in " ".join(texts), flags
        assert KEPT in users

    # 2. A lost disk: the branch's newest database predates the erasure; its record is offsite.
    wait_until(
        lambda: (
            (
                (at := health()["journal"]["offsite"]["pushed_through"])
                and datetime.fromisoformat(at).timestamp() >= erased_at - 1
            )
            or _journal_pushed_after(health(), erased_at)
        ),
        timeout=90,
        what="the erasure record pushed offsite",
    )
    bot = psutil.Process(health()["bot"]["pid"])
    proc.popen.send_signal(signal.SIGKILL)
    proc.wait(10)
    bot.wait(30)
    shutil.rmtree(data)
    running(BACKUP_OFFSITE_EVERY=offsite_every)
    doc = wait_until(
        lambda: (d := health())["recovery"]["count"] and d["bot"]["status"] == "running" and d,
        timeout=120,
        what="recovery from the branch",
    )
    assert doc["recovery"]["last"]["source"] == "offsite"
    erasures = doc["recovery"]["last"]["erasures"]
    assert (erasures["users"], erasures["problems"]) == (1, []), "made again before the bot ran"
    users, texts = people(database)
    assert KEPT in users, "the others are back"
    assert ERASED not in users and SECRET not in " ".join(texts)
    sent = len(fake_api.sent(ERASED))
    fake_api.send_text(ERASED, "/start", first_name="U22")
    said = fake_api.wait_for_sent(ERASED, timeout=30, after=sent)["text"]
    assert "Nice to meet you" in said  # a stranger again: nothing of them came back


def _journal_pushed_after(doc: dict, moment: float) -> bool:
    """The erasure alone changes no update: a push of the record shows as a later push."""
    offsite = doc["journal"]["offsite"]
    last = offsite.get("last_push")
    try:
        return bool(last) and datetime.fromisoformat(last).timestamp() >= moment
    except (TypeError, ValueError):
        return False


@pytest.fixture
def stack(processes, tmp_path, fake_api) -> Stack:
    port, data = free_port(), tmp_path / "data"
    env = base_env(
        data, port, TELEGRAM_BOT_TOKEN=fake_api.token, TELEGRAM_API_URL=fake_api.base_url
    )
    return Stack(processes, fake_api, data, port, env)


@pytest.mark.timeout(300)
def test_a_salvage_of_a_file_from_before_the_erasure_does_not_bring_the_user_back(stack):
    """The live file is rolled back to a copy from before the erasure (a disk snapshot put
    back by hand) and then damaged: recovery installs the newest backup and salvages the rows
    the damaged file still holds — the erased user's among them — and the erasure is made
    again inside the merge."""
    stack.start()
    stack.register([KEPT, ERASED])
    for uid, text in ((KEPT, "hello"), (ERASED, SECRET)):
        stack.fake.send_text(uid, text, first_name=f"U{uid}")
    wait_until(lambda: SECRET in people(stack.database)[1], timeout=30, what="rows committed")
    before = stack.data / "before-erasure.db"
    with sqlite3.connect(stack.database, timeout=10) as live, sqlite3.connect(before) as copy:
        live.backup(copy)
    sent = len(stack.fake.sent(ERASED))
    stack.fake.send_text(ERASED, "/deleteme", first_name="U22")
    question = stack.fake.wait_for_sent(ERASED, contains="Are you sure", after=sent, timeout=30)
    stack.fake.send_callback(ERASED, "deleteme:yes", question["result"], first_name="U22")
    stack.fake.wait_for_sent(ERASED, contains="Done: I erased", timeout=30)
    wait_until(lambda: ERASED not in stack.users(), timeout=30, what="the erasure committed")
    stack.wait_for_backups()
    stack.proc.popen.send_signal(signal.SIGTERM)
    assert stack.proc.wait(60) == 0

    for companion in ("-wal", "-shm"):
        (stack.data / f"erixcast.db{companion}").unlink(missing_ok=True)
    shutil.move(before, stack.database)
    assert ERASED in stack.users(), "the rolled-back file holds the erased user"
    forge.damage_pages(stack.database, "messages")
    stack.start()
    doc = wait_until(  # the salvage merges with the bot back (issue 14), no longer before
        lambda: (
            (d := stack.health())["recovery"]["count"]
            and d["bot"]["status"] == "running"
            and (d["recovery"]["last"].get("salvage") or {}).get("status") == "merged"
            and d
        ),
        timeout=90,
        what="recovery with salvage",
    )
    last = doc["recovery"]["last"]
    merged = (last.get("salvage") or {}).get("merged") or {}
    assert merged.get("users", 0) >= 1, f"the erased user's row was salvaged first: {last}"
    assert last["salvage"]["erased"].get("users") == 1, f"made again inside the merge: {last}"
    assert not last["erasures"]["problems"], last
    users, texts = people(stack.database)
    assert ERASED not in users and SECRET not in " ".join(texts)
    assert KEPT in users
