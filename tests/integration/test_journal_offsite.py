"""The update journal, watchdog side, on real files and real git (a bare repository and the
authenticated HTTP server): journal packages on the backup branch, refused when forged or of
the other kind, rotated only once a backup on the branch holds them, brought back by a
lost-disk restore; the journal pruned when backups cover it (or loudly past its bound); the
disk guard counting it."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pyrage import x25519

from conf.journal import (
    UPDATE,
    JournalEntry,
    JournalWriter,
    list_segments,
    read_journal,
    read_segment,
    segment_number,
)
from conf.layout import DataLayout
from conf.units import MIB
from tests import dbgen
from tests.fakes.clock import FakeClock
from tests.fakes.git_server import FakeGitServer
from tests.helpers import base_env, free_port, get_json, wait_until
from tests.integration import test_offsite as base
from tests.integration.test_offsite import Site, blob, git, make_store
from tests.integration.test_offsite_auth import plant
from tests.runtime_context import runtime_context
from watchdog.data.backups import JOURNAL_HEADROOM, BackupKeeper, BackupSkipped
from watchdog.data.catalogue import Catalogue
from watchdog.data.journal import assemble
from watchdog.data.recovery import recover
from watchdog.offsite.auth import MacKey, seal
from watchdog.rules.health import Thresholds, assess
from watchdog.runtime.context import RuntimeContext
from watchdog.runtime.maintenance import Maintenance

pytestmark = pytest.mark.integration
remote = base.remote
http_remote = base.http_remote
site = base.site
BRANCH = "db-backups"
GIT_TOKEN = "ghp_JournalTestToken0123456789abcd"
WATCHDOG = [sys.executable, "-m", "watchdog", "run"]


def iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds")


class Updates:
    """A JournalWriter standing in for the bot: updates numbered from ``first``."""

    def __init__(self, folder: Path, first: int = 1000, segment_bytes: int = 3000) -> None:
        self.writer = JournalWriter(folder, segment_bytes=segment_bytes)
        self.writer.open()
        self.next = first

    def add(self, count: int, at: float | None = None, user: int = 7) -> list[int]:
        ids = []
        for _ in range(count):
            uid = self.next
            self.next += 1
            update = {"update_id": uid, "message": {"text": f"hello {uid}", "from": {"id": user}}}
            self.writer.append([JournalEntry(UPDATE, uid, at or time.time(), user, update)])
            ids.append(uid)
        return ids


@pytest.fixture
def bot_site(tmp_path) -> Site:
    """A machine with the bot's own database (recovery proves the schema)."""
    root = tmp_path / "bot-data"
    layout = DataLayout(root, root / "erixcast.db")
    layout.ensure()
    dbgen.create_bot(layout.database, 200_000)
    keeper = BackupKeeper(layout, keep={"daily": 7, "manual": 5}, min_free_bytes=0, app_version="t")
    return Site(root, layout, keeper, x25519.Identity.generate(), time.time() - 86400)


def local_lines(folder: Path) -> dict[int, bytes]:
    return {
        segment_number(path) or 0: b"".join(read_segment(path).lines)
        for path in list_segments(folder)
    }


def journal_ids(folder: Path) -> list[int]:
    return [entry.update_id for entry in read_journal(folder).updates]


def test_journal_lines_go_offsite_and_come_back_byte_identical(remote, site):
    store = make_store(remote, site)
    folder = site.layout.journal
    updates = Updates(folder)
    updates.add(25)
    first = store.push_journal(folder, time.time())
    assert first is not None and first.updates == 25
    assert store.push_journal(folder, time.time()) is None, "nothing new: no push"
    updates.add(4)  # only the newest segment's new complete lines travel
    second = store.push_journal(folder, time.time())
    assert second is not None and second.updates == 4 and second.chunks == 1
    # a line being written (no newline yet) is not pushed
    with list_segments(folder)[-1].open("ab") as handle:
        handle.write(b'0123456789abcdef {"v":1')
    assert store.push_journal(folder, time.time()) is None
    fetched = store.fetch_journal(0.0)
    assert fetched.refused == ()
    assert [p.id for p in fetched.packages] == [first.id, second.id]
    segments, _, taken, problems = assemble(fetched.packages)
    assert problems == [] and taken == 29
    assert segments == local_lines(folder), "every line, byte for byte, in its segment"
    # journal packages are never backups
    assert store.candidates().entries == () and store.candidates().refused == ()


def test_an_erasure_sends_the_rewritten_segment_whole_and_the_records(remote, site):
    store = make_store(remote, site)
    folder = site.layout.journal
    updates = Updates(folder, segment_bytes=100_000)
    updates.add(5, user=7)
    updates.add(5, user=8)
    store.push_journal(folder, time.time())
    assert updates.writer.erase_user(8, 5000, time.time()) == 5
    pushed = store.push_journal(folder, time.time())
    assert pushed is not None and pushed.updates == 5  # the segment again, without user 8
    segments, erasures, _, problems = assemble(store.fetch_journal(0.0).packages)
    assert problems == [] and segments == local_lines(folder)
    assert len(erasures) == 1
    assert all(e.user_id == 7 for e in read_journal(folder).updates)


def genuine_journal_files(repo: Path, package_id: str) -> dict[str, bytes]:
    listing = git(repo, "ls-tree", f"refs/heads/{BRANCH}:{package_id}").splitlines()
    return {line.split("\t")[1]: blob(repo, line.split()[2]) for line in listing if "\t" in line}


def test_a_forged_journal_package_is_refused_and_the_genuine_ones_still_come(remote, site):
    store = make_store(remote, site)
    folder = site.layout.journal
    updates = Updates(folder)
    genuine_ids = updates.add(10)
    pushed = store.push_journal(folder, time.time())
    assert pushed is not None
    files = genuine_journal_files(remote.repo, pushed.id)
    package = json.loads(files["package.json"])
    # Another key's MAC over a package that claims to be ours, and carries our parts.
    forged = dict(files)
    forged["package.json"] = json.dumps(
        seal({**package, "id": "20990101T000000Z-journal-f0f0f0"}, MacKey(b"k" * 32))
    ).encode()
    plant(remote.repo, "20990101T000000Z-journal-f0f0f0", forged, index_fields={"kind": "journal"})
    # A genuine journal package listed as a backup: refused as a backup, never restored.
    plant(remote.repo, pushed.id + "x", files, index_fields={})
    fetched = store.fetch_journal(0.0)
    assert [p.id for p in fetched.packages] == [pushed.id]
    assert any("f0f0f0" in reason and "MAC" in reason for reason in fetched.refused)
    refused = {r.id: r for r in store.candidates().refused}
    assert pushed.id + "x" in refused and "journal" in refused[pushed.id + "x"].reason
    segments, _, _, _ = assemble(fetched.packages)
    assert [e.update_id for e in read_journal(folder).updates] == genuine_ids
    assert segments == local_lines(folder)


def test_a_backup_package_listed_as_a_journal_is_refused(remote, site):
    store = make_store(remote, site)
    backup = site.backup()
    entry = store.push(backup)
    files = genuine_journal_files(remote.repo, entry.id)
    plant(remote.repo, entry.id + "-j", files, index_fields={"kind": "journal"})
    fetched = store.fetch_journal(0.0)
    assert fetched.packages == ()
    assert any("not a journal package" in reason for reason in fetched.refused)


def test_a_backup_push_lets_go_of_the_journal_packages_it_holds_only(remote, site):
    store = make_store(remote, site, keep=5)
    folder = site.layout.journal
    updates = Updates(folder)
    old_at = time.time() - 3600
    updates.add(5, at=old_at)
    covered = store.push_journal(folder, old_at + 1)
    site.clock = time.time() - 1800  # the backup begins after those updates …
    backup = site.backup()
    updates.add(5)  # … and these come after it: only their package has them
    newer = store.push_journal(folder, time.time())
    store.push(backup)
    assert covered is not None and newer is not None
    ids = [p.id for p in store.fetch_journal(0.0).packages]
    assert ids == [newer.id], "the covered package went, the only copy of the newer ones stayed"
    assert [b.id for b in store.list()] == [backup.id]


def test_a_lost_disk_recovery_brings_the_journal_back(http_remote, bot_site, tmp_path):
    site = bot_site
    store = make_store(http_remote, site)
    folder = site.layout.journal
    updates = Updates(folder)
    updates.add(6, at=time.time() - 3000)
    site.clock = time.time() - 2000
    store.push(site.backup())
    after = updates.add(40)  # the updates the backup lacks
    assert store.push_journal(folder, time.time()) is not None
    expected = local_lines(folder)
    # The disk is lost: a new DATA_DIR, nothing local.
    root = tmp_path / "new-disk"
    layout = DataLayout(root, root / "erixcast.db")
    layout.ensure()
    fresh = make_store(http_remote, site, cache_dir=root / "offsite" / "cache.git")
    result = recover(layout, "the database file is missing", "", time.time(), fresh)
    assert result.source == "offsite" and result.journal is not None
    assert result.journal["problems"] == []
    assert set(after) <= set(journal_ids(layout.journal))
    assert local_lines(layout.journal) == expected
    assert "journal lines brought back" in result.summary()


def test_restore_from_git_brings_the_journal_back(http_remote, bot_site, tmp_path):
    site = bot_site
    store = make_store(http_remote, site)
    folder = site.layout.journal
    updates = Updates(folder)
    site.clock = time.time() - 2000
    store.push(site.backup())
    after = updates.add(12)
    store.push_journal(folder, time.time())
    shutil.rmtree(site.root)
    data = tmp_path / "operator-disk"
    env = {
        "PATH": "/usr/bin:/bin",
        "DATA_DIR": str(data),
        "ENV_FILE": "/dev/null",
        "BACKUP_GIT_URL": http_remote.url,
        "BACKUP_GIT_TOKEN": http_remote.token or "",
        "BACKUP_AGE_KEY": str(site.identity),
    }
    done = subprocess.run(
        [sys.executable, "-m", "watchdog", "restore", "--from-git", "--yes", "latest"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stderr
    assert "journal: 12 updates" in done.stdout + done.stderr
    assert journal_ids(data / "journal") == after


def test_the_disk_guard_counts_the_journal(site, monkeypatch):
    keeper = BackupKeeper(site.layout, keep={"manual": 5}, min_free_bytes=0, app_version="t")
    need = keeper.expected_bytes("manual")
    monkeypatch.setattr(keeper, "free_bytes", lambda: need + JOURNAL_HEADROOM // 2)
    assert keeper.take("manual", "no journal yet", time.time()).backup is not None
    Updates(site.layout.journal).add(3)
    need = keeper.expected_bytes("manual")
    monkeypatch.setattr(keeper, "free_bytes", lambda: need + JOURNAL_HEADROOM // 2)
    with pytest.raises(BackupSkipped, match="update journal to grow, which holds"):
        keeper.take("manual", "the journal needs its room", time.time())


# -- the schedule: pruning and pushes in the watchdog's maintenance ---------------------------


class Alerts:
    def __init__(self) -> None:
        self.texts: list[str] = []

    async def send(self, text: str) -> int:
        self.texts.append(text)
        return 1


def maintenance_for(
    tmp_path: Path, monkeypatch, store=None, **env: str
) -> tuple[Maintenance, RuntimeContext, Alerts]:
    alerts = Alerts()
    ctx = runtime_context(
        monkeypatch,
        tmp_path / "wd-data",
        env=env,
        clock=FakeClock(start=time.time()),
        alerter=alerts,
    )
    return Maintenance(ctx, Catalogue(ctx.layout), store), ctx, alerts


def health_of(ctx: RuntimeContext) -> dict:
    limits = Thresholds(80, 95, 60, 900, journal_offsite_every=300)
    return assess(ctx.state, limits, ctx.clock.time()).document


def prune_round(maintenance: Maintenance) -> None:
    async def once() -> None:
        await maintenance.prune_journal_if_due()
        await asyncio.sleep(0)  # let a background alert run

    asyncio.run(asyncio.wait_for(once(), 30))


def segments_now(ctx: RuntimeContext) -> list[int]:
    return [segment_number(p) or 0 for p in list_segments(ctx.layout.journal)]


def old_journal(ctx: RuntimeContext) -> Updates:
    """Three closed segments of updates a while ago, and a newest one being written."""
    updates = Updates(ctx.layout.journal, segment_bytes=1500)
    now = ctx.clock.time()
    updates.add(30, at=now - 1000)
    updates.add(1, at=now - 10)
    return updates


def test_covered_segments_are_pruned_and_the_newest_stays(tmp_path, monkeypatch):
    maintenance, ctx, _ = maintenance_for(tmp_path, monkeypatch)
    dbgen.create_bot(ctx.layout.database, 100_000)
    old_journal(ctx)
    before = segments_now(ctx)
    assert len(before) >= 3
    prune_round(maintenance)  # no backup yet: nothing goes
    assert segments_now(ctx) == before
    keeper = BackupKeeper(ctx.layout, keep={"manual": 5}, min_free_bytes=0, app_version="t")
    keeper.take("manual", "covers the old updates", ctx.clock.time() - 500)
    ctx.clock.advance(61)  # the next reading
    prune_round(maintenance)
    after = segments_now(ctx)
    assert after and after[-1] == before[-1], "the newest segment is never removed"
    assert len(after) < len(before)
    document = health_of(ctx)["journal"]
    assert document["segments"] == len(after) and document["pruned"] == len(before) - len(after)
    assert document["bytes"] > 0 and document["newest_entry"] is not None
    # The disk's account counts the journal (in MB: a lone small segment may round to 0.000).
    assert health_of(ctx)["storage"]["journal_mb"] == round(document["bytes"] / MIB, 3)


def test_with_offsite_configured_a_local_backup_alone_prunes_nothing(tmp_path, monkeypatch):
    maintenance, ctx, _ = maintenance_for(
        tmp_path, monkeypatch, BACKUP_GIT_URL=str(tmp_path / "nowhere.git")
    )
    dbgen.create_bot(ctx.layout.database, 100_000)
    old_journal(ctx)
    before = segments_now(ctx)
    keeper = BackupKeeper(ctx.layout, keep={"manual": 5}, min_free_bytes=0, app_version="t")
    backup = keeper.take("manual", "local only", ctx.clock.time() - 500).backup
    assert backup is not None
    prune_round(maintenance)
    assert segments_now(ctx) == before, "no backup offsite holds them: they stay"
    ctx.state.offsite.newest_at = backup.created_at  # that backup went offsite
    prune_round(maintenance)
    assert len(segments_now(ctx)) < len(before)


def test_past_its_bound_the_journal_is_pruned_loudly(tmp_path, monkeypatch):
    maintenance, ctx, alerts = maintenance_for(
        tmp_path, monkeypatch, JOURNAL_MAX_MB="0.002", ADMIN_IDS="1"
    )
    old_journal(ctx)
    before = segments_now(ctx)
    prune_round(maintenance)
    after = segments_now(ctx)
    assert after[-1] == before[-1] and len(after) < len(before)
    document = health_of(ctx)
    assert document["journal"]["size_bound"]["pruned"] == len(before) - len(after)
    assert "JOURNAL PAST ITS BOUND" in document["checks"]["journal"]["detail"]
    assert document["checks"]["journal"]["status"] == "degraded"
    assert any("JOURNAL PAST ITS BOUND" in event.message for event in ctx.state.events)
    assert alerts.texts and "JOURNAL PAST ITS BOUND" in alerts.texts[0]


def test_pushes_on_schedule_and_failures_back_off(tmp_path, monkeypatch, remote, site):
    store = make_store(remote, site)
    maintenance, ctx, _ = maintenance_for(tmp_path, monkeypatch, store)
    updates = Updates(ctx.layout.journal)
    updates.add(5)

    def push() -> None:
        asyncio.run(asyncio.wait_for(maintenance.push_journal_if_due(), 60))

    push()
    state = ctx.state.journal
    assert state.pushes == 1 and state.last_push_at == ctx.clock.time()
    updates.add(2)
    push()  # not due yet
    assert state.pushes == 1
    ctx.clock.advance(300)
    push()
    assert state.pushes == 2
    assert len(store.fetch_journal(0.0).packages) == 2
    # The server goes away: the one backoff, and /health says so.
    broken = make_store(remote, site, cache_dir=tmp_path / "other-cache" / "cache.git")
    shutil.rmtree(remote.repo)
    maintenance.offsite = broken
    updates.add(1)
    ctx.clock.advance(300)
    push()
    assert state.push_failures == 1 and state.next_push_at is not None
    document = health_of(ctx)
    assert document["journal"]["offsite"]["failures"] == 1
    assert document["checks"]["journal"]["status"] == "degraded"
    push()  # inside the backoff: not tried again
    assert state.push_failures == 1


# -- the whole watchdog, a lost disk -----------------------------------------------------------


def test_the_watchdog_pushes_the_journal_and_a_lost_disk_gets_it_back(processes, tmp_path):
    identity = x25519.Identity.generate()
    with FakeGitServer(tmp_path / "server", GIT_TOKEN) as server:
        url = server.url(server.create_repo("backups.git"))
        data = tmp_path / "data"
        data.mkdir()
        dbgen.create_bot(data / "erixcast.db", 200_000)
        port = free_port()
        env = base_env(
            data,
            port,
            BACKUP_GIT_URL=url,
            BACKUP_GIT_TOKEN=GIT_TOKEN,
            BACKUP_AGE_KEY=str(identity),
            BACKUP_GIT_TIMEOUT="30",
            BACKUP_OFFSITE_EVERY="1s",
            JOURNAL_OFFSITE_EVERY="1s",
        )

        def health() -> dict:
            return get_json(f"http://127.0.0.1:{port}/health")[1]

        proc = processes.start("watchdog", WATCHDOG, env)
        wait_until(
            lambda: (
                (d := health())["backups"]["offsite"]["newest_id"]
                and all(d["backups"]["tiers"][t] for t in ("hourly", "daily", "weekly"))
            ),
            timeout=90,
            what="the first start's backups, one of them offsite",
        )
        # The bot's part, by hand: updates acknowledged after those backups (a start-up backup
        # taken after them would cover them, and the journal would be pruned before the check).
        journal = Updates(data / "journal", first=900_001, segment_bytes=4000)
        written = journal.add(60)
        journal.writer.close()
        newest = max(e.at for e in read_journal(data / "journal").updates)
        started = time.monotonic()
        doc = wait_until(
            lambda: (
                (d := health())["journal"]["offsite"]["pushed_through"]
                and d["journal"]["offsite"]["pushed_through"] >= iso(newest)
                and d["journal"]["segments"]  # measured again after the push
                and d
            ),
            timeout=60,
            what="the journal offsite, and measured after it",
        )
        print(f"journal offsite within {time.monotonic() - started:.1f} s of the last update")
        assert doc["journal"]["segments"] >= 1 and doc["journal"]["bytes"] > 0
        assert doc["checks"]["journal"]["status"] == "healthy", doc["checks"]["journal"]
        proc.popen.send_signal(signal.SIGKILL)
        proc.wait(10)
        shutil.rmtree(data)  # the disk is lost, journal and all

        processes.start("watchdog", WATCHDOG, env)
        doc = wait_until(
            lambda: (d := health())["recovery"]["count"] and d,
            timeout=120,
            what="recovery from the branch",
        )
        assert doc["recovery"]["last"]["source"] == "offsite"
        brought = doc["recovery"]["last"]["journal"]
        assert brought is not None and brought["problems"] == [], brought
        assert set(written) <= set(journal_ids(data / "journal")), "every update is back"
        assert doc["journal"]["last_restore"] == brought
        texts = [p.output() for p in processes.started]
        assert not any(GIT_TOKEN in text or str(identity) in text for text in texts)
