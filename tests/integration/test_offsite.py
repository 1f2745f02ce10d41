"""The offsite store against real git: a local bare repository, and an authenticated HTTP git
server on 127.0.0.1 (``git http-backend`` behind Basic auth, as GitHub does)."""

from __future__ import annotations

import base64
import json
import logging
import os
import secrets
import subprocess
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pyrage import x25519

from conf.layout import DataLayout
from tests import dbgen
from tests.fakes.git_server import FakeGitServer, git_env
from tests.helpers import TEST_RETENTION
from watchdog.data.backups import BackupKeeper
from watchdog.data.catalogue import Backup
from watchdog.data.snapshot import decompress, sha256_of
from watchdog.offsite import OffsiteError, OffsiteStore, cache_dir_for
from watchdog.offsite import cache as cache_module

pytestmark = pytest.mark.integration

TOKEN = f"ghp_{secrets.token_hex(18)}"
HEADER_B64 = base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()
KEEP = TEST_RETENTION
PART = 256 * 1024


@dataclass
class Remote:
    kind: str
    url: str
    repo: Path
    token: str | None
    server: FakeGitServer | None


@dataclass
class Site:
    root: Path
    layout: DataLayout
    keeper: BackupKeeper
    identity: x25519.Identity
    clock: float

    def backup(self, tier: str = "daily") -> Backup:
        self.clock += 60
        outcome = self.keeper.take(tier, "test", self.clock)
        assert outcome.backup is not None
        return outcome.backup


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "--git-dir", str(repo), *args],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
        env=git_env(repo.parent),
    ).stdout.strip()


def blob(repo: Path, spec: str) -> bytes:
    return subprocess.run(
        ["git", "--git-dir", str(repo), "cat-file", "blob", spec],
        check=True,
        capture_output=True,
        timeout=30,
        env=git_env(repo.parent),
    ).stdout


def commits_on(repo: Path, branch: str = "db-backups") -> int:
    return int(git(repo, "rev-list", "--count", f"refs/heads/{branch}"))


@pytest.fixture(params=["local", "http"])
def remote(request, tmp_path) -> Iterator[Remote]:
    if request.param == "local":
        repo = tmp_path / "remote" / "backups.git"
        repo.parent.mkdir()
        subprocess.run(["git", "init", "--quiet", "--bare", str(repo)], check=True, timeout=30)
        yield Remote("local", str(repo), repo, None, None)
        return
    with FakeGitServer(tmp_path / "server", TOKEN) as server:
        repo = server.create_repo("backups.git")
        yield Remote("http", server.url(repo), repo, TOKEN, server)


@pytest.fixture
def http_remote(tmp_path) -> Iterator[Remote]:
    with FakeGitServer(tmp_path / "server", TOKEN) as server:
        repo = server.create_repo("backups.git")
        yield Remote("http", server.url(repo), repo, TOKEN, server)


@pytest.fixture
def site(tmp_path) -> Site:
    root = tmp_path / "data"
    layout = DataLayout(root, root / "erixcast.db")
    layout.ensure()
    dbgen.create(layout.database, 1_500_000)
    keeper = BackupKeeper(layout, keep=KEEP, min_free_bytes=0, app_version="t")
    # backups a minute apart, starting a day ago: none is dated in the future
    return Site(root, layout, keeper, x25519.Identity.generate(), time.time() - 86400)


def make_store(remote: Remote, site: Site, **overrides) -> OffsiteStore:
    cache = overrides.pop("cache_dir", None) or cache_dir_for(site.root)
    options = {
        "token": remote.token,
        "age_identity": str(site.identity),
        "allow_plaintext": False,
        "keep": 3,
        "timeout": 30.0,
        "part_size": PART,
    }
    options.update(overrides)
    return OffsiteStore(remote.url, "db-backups", cache, **options)


def plain_sha256(backup: Backup, scratch: Path) -> str:
    if backup.manifest.compression is None:
        return sha256_of(backup.data_path)
    plain = scratch / f"{backup.id}.plain"
    decompress(backup.data_path, plain)
    try:
        return sha256_of(plain)
    finally:
        plain.unlink()


def files_holding(folder: Path, needles: list[bytes]) -> list[str]:
    hits = []
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            if any(needle in data for needle in needles):
                hits.append(str(path))
    return hits


SECRETS = [TOKEN.encode(), HEADER_B64.encode()]


# -- round trip ----------------------------------------------------------------------------


def test_push_list_fetch_round_trip(remote, site, tmp_path, caplog, capfd, monkeypatch):
    caplog.set_level(logging.DEBUG)
    scanned: list[str] = []
    original_remove = cache_module.remove_tree

    def scan_then_remove(path: Path) -> None:
        if path.exists():
            scanned.append(path.name)
            assert files_holding(path, SECRETS) == [], "a secret reached a temporary repository"
        original_remove(path)

    monkeypatch.setattr(cache_module, "remove_tree", scan_then_remove)
    store = make_store(remote, site)
    assert store.list() == []

    daily = site.backup("daily")
    weekly = site.backup("weekly")  # stored compressed locally: pushed without recompressing
    assert weekly.manifest.compression == "zstd"
    first = store.push(daily)
    second = store.push(weekly)
    assert (first.id, second.id) == (daily.id, weekly.id)
    assert second.parts > 1 and second.encrypted

    listed = store.list()
    assert [entry.id for entry in listed] == [weekly.id, daily.id]
    assert listed[0].commit == git(remote.repo, "rev-parse", "refs/heads/db-backups")
    assert listed[0].sha256 == weekly.manifest.sha256

    newest = tmp_path / "restored" / "newest.db"
    manifest = store.fetch(None, newest)
    assert manifest.id == weekly.id
    assert sha256_of(newest) == manifest.sha256 == plain_sha256(weekly, tmp_path)
    older = tmp_path / "restored" / "older.db"
    manifest = store.fetch(daily.id, older)
    assert manifest.id == daily.id
    assert sha256_of(older) == manifest.sha256 == sha256_of(daily.data_path)
    assert scanned and {name.split("-")[0] for name in scanned} == {"fetch", "push", "parts"}
    assert sorted(p.name for p in (tmp_path / "restored").iterdir()) == ["newest.db", "older.db"]

    # What is on the branch: an index, packages, encrypted manifests and encrypted parts only.
    names = git(remote.repo, "ls-tree", "-r", "--name-only", "refs/heads/db-backups").split()
    assert "index.json" in names
    parts = [name for name in names if "/part-" in name]
    assert parts and all(name.endswith(".zst.age") for name in parts)
    assert {name.split("/", 1)[1] for name in names if "/" in name} - {
        p.split("/", 1)[1] for p in parts
    } == {"manifest.age", "package.json"}
    # In clear only what finds a package: no dates, sizes or row counts of the database.
    index = json.loads(git(remote.repo, "cat-file", "blob", "db-backups:index.json"))
    assert [set(entry) for entry in index["entries"]] == [{"id", "commit", "tree"}] * 2
    for backup in (daily, weekly):  # the tip carries every package (not the older parts)
        package = json.loads(blob(remote.repo, f"db-backups:{backup.id}/package.json"))
        assert package["mac"]["value"] and package["id"] == backup.id
        assert not {"created_at", "size_bytes", "rows", "sha256"} & set(package)
        sealed = blob(remote.repo, f"db-backups:{backup.id}/manifest.age")
        assert sealed.startswith(b"age-encryption.org/v1")
        assert backup.manifest.sha256.encode() not in sealed
    head = subprocess.run(
        ["git", "--git-dir", str(remote.repo), "cat-file", "blob", f"db-backups:{parts[0]}"],
        capture_output=True,
        check=True,
        timeout=30,
    ).stdout
    assert head.startswith(b"age-encryption.org/v1")
    assert b"SQLite format 3" not in head

    # The token is nowhere: logs, output, the cache repository, the server's repository.
    out, err = capfd.readouterr()
    for text in (caplog.text, out, err):
        assert TOKEN not in text and HEADER_B64 not in text
    assert files_holding(site.root, SECRETS) == []
    assert files_holding(remote.repo, SECRETS) == []
    if remote.server is not None:
        requests = remote.server.received
        assert requests and all(r.authorized for r in requests)
        assert all(TOKEN not in r.path + r.query for r in requests)
        assert all(r.user == "x-access-token" for r in requests)


def test_history_is_bounded_to_keep_commits(remote, site):
    keep = 3
    store = make_store(remote, site, keep=keep)
    pushed = [store.push(site.backup("hourly")) for _ in range(keep + 3)]
    assert commits_on(remote.repo) == keep
    assert [entry.id for entry in store.list()] == [entry.id for entry in reversed(pushed)][:keep]
    cache = cache_dir_for(site.root)
    present = [git(cache, "cat-file", "-t", e.tree) if e.tree else "" for e in pushed[-keep:]]
    assert present == ["tree"] * keep
    for dropped in pushed[:3]:  # what left the chain left the cache too
        result = subprocess.run(
            ["git", "--git-dir", str(cache), "cat-file", "-e", dropped.tree],
            capture_output=True,
            timeout=30,
        )
        assert result.returncode != 0


def test_pushing_the_same_backup_twice_adds_nothing(remote, site):
    store = make_store(remote, site)
    backup = site.backup()
    first = store.push(backup)
    again = store.push(backup)
    assert again.id == first.id and again.commit == first.commit
    assert commits_on(remote.repo) == 1


def test_a_fresh_machine_restores_with_only_the_settings(remote, site, tmp_path):
    backup = site.backup()
    make_store(remote, site).push(backup)
    elsewhere = tmp_path / "new-machine"
    reader = make_store(remote, site, cache_dir=cache_dir_for(elsewhere))
    dest = elsewhere / "erixcast.db"
    manifest = reader.fetch(None, dest)
    assert sha256_of(dest) == backup.manifest.sha256 == manifest.sha256
    assert not cache_dir_for(elsewhere).exists()  # restore never needs the cache


# -- keys and plaintext --------------------------------------------------------------------


def test_wrong_age_key_is_a_clear_error_and_leaves_nothing(remote, site, tmp_path):
    make_store(remote, site).push(site.backup())
    other = x25519.Identity.generate()
    reader = make_store(
        remote, site, age_identity=str(other), cache_dir=tmp_path / "reader" / "cache.git"
    )
    dest = tmp_path / "restore" / "erixcast.db"
    with pytest.raises(OffsiteError) as caught:
        reader.fetch(None, dest)
    assert caught.value.kind == "key"
    assert "age key does not open" in str(caught.value)
    assert str(other) not in str(caught.value) and str(site.identity) not in str(caught.value)
    assert not dest.parent.exists()  # refused before anything was written
    assert list(reader.work_dir.iterdir()) == []


def test_no_plaintext_push_even_when_allowed(remote, site, tmp_path):
    # no age key, no MAC key: nothing unauthenticated is ever pushed
    for allowed in (False, True):
        with pytest.raises(OffsiteError, match="BACKUP_AGE_KEY") as caught:
            make_store(remote, site, age_identity=None, allow_plaintext=allowed)
        assert caught.value.kind == "config"
    assert git(remote.repo, "for-each-ref") == ""


def test_a_read_only_store_without_a_key_can_neither_list_nor_fetch(remote, site, tmp_path):
    backup = site.backup()
    make_store(remote, site).push(backup)
    reader = make_store(
        remote, site, age_identity=None, read_only=True, cache_dir=tmp_path / "ro.git"
    )
    for operation in (reader.list, lambda: reader.fetch(None, tmp_path / "x.db")):
        with pytest.raises(OffsiteError, match="BACKUP_AGE_KEY is needed") as caught:
            operation()
        assert caught.value.kind == "key"
    with pytest.raises(OffsiteError, match="read-only"):
        reader.push(backup)
    keyed = make_store(remote, site, read_only=True, cache_dir=tmp_path / "ro2.git")
    assert [entry.id for entry in keyed.list()] == [backup.id]


def test_missing_branch_lists_empty_and_fetch_says_so(remote, site, tmp_path):
    store = make_store(remote, site)
    assert store.list() == []
    with pytest.raises(OffsiteError, match="does not exist") as caught:
        store.fetch(None, tmp_path / "x.db")
    assert caught.value.kind == "not_found"
    store.push(site.backup())
    with pytest.raises(OffsiteError, match="no offsite backup nope") as caught:
        store.fetch("nope", tmp_path / "x.db")
    assert caught.value.kind == "not_found"
    assert not (tmp_path / "x.db").exists()


# -- the server says no --------------------------------------------------------------------


def test_a_rejected_push_is_an_error(remote, site):
    git(remote.repo, "config", "receive.denyNonFastForwards", "true")
    store = make_store(remote, site, keep=1)  # every push after the first rewrites the branch
    first = store.push(site.backup())
    with pytest.raises(OffsiteError, match="rejected the push") as caught:
        store.push(site.backup())
    assert caught.value.kind == "rejected"
    assert git(remote.repo, "rev-parse", "refs/heads/db-backups") == first.commit


def test_a_branch_that_is_not_ours_is_never_overwritten(remote, site, tmp_path):
    work = tmp_path / "code"
    env = {**git_env(tmp_path), "GIT_AUTHOR_NAME": "a", "GIT_AUTHOR_EMAIL": "a@b"}
    env.update(GIT_COMMITTER_NAME="a", GIT_COMMITTER_EMAIL="a@b")
    subprocess.run(["git", "init", "--quiet", str(work)], check=True, timeout=30, env=env)
    (work / "main.py").write_text("print('code')\n")
    for args in (["add", "main.py"], ["commit", "--quiet", "-m", "code"]):
        subprocess.run(["git", "-C", str(work), *args], check=True, timeout=30, env=env)
    code_commit = git(work / ".git", "rev-parse", "HEAD")
    git(remote.repo, "fetch", "--quiet", str(work), "HEAD:refs/heads/db-backups")
    store = make_store(remote, site)
    with pytest.raises(OffsiteError, match="something other than offsite backups") as caught:
        store.push(site.backup())
    assert caught.value.kind == "foreign"
    assert git(remote.repo, "rev-parse", "refs/heads/db-backups") == code_commit


def test_wrong_token_is_a_clear_error(http_remote, site, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    wrong = f"ghp_{secrets.token_hex(18)}"
    store = make_store(http_remote, site, token=wrong)
    failures = []
    for operation in (store.list, lambda: store.push(site.backup())):
        with pytest.raises(OffsiteError) as caught:
            operation()
        failures.append(caught.value)
    for error in failures:
        assert error.kind == "auth"
        assert "refused the credentials" in str(error)
        text = "".join(traceback.format_exception(error))
        assert wrong not in text and TOKEN not in text
    out, err = capfd.readouterr()
    for text in (caplog.text, out, err):
        assert wrong not in text
    assert files_holding(site.root, [wrong.encode()]) == []
    assert not any(r.authorized for r in http_remote.server.received)
    assert git(http_remote.repo, "for-each-ref") == ""


@pytest.mark.parametrize("mode", ["down", "hanging"])
def test_server_down_or_hanging_fails_within_the_timeout(http_remote, site, tmp_path, mode):
    timeout = 3.0
    store = make_store(http_remote, site, timeout=timeout)
    backup = site.backup()
    store.push(backup)
    http_remote.server.mode = mode
    expected = {"down": "unreachable", "hanging": "timeout"}[mode]
    operations = {
        "push": lambda: store.push(site.backup()),
        "list": store.list,
        "fetch": lambda: store.fetch(None, tmp_path / "x.db"),
    }
    for name, operation in operations.items():
        started = time.monotonic()
        with pytest.raises(OffsiteError) as caught:
            operation()
        elapsed = time.monotonic() - started
        assert caught.value.kind == expected, (name, str(caught.value))
        assert elapsed < timeout + 3, (name, elapsed)
        assert TOKEN not in str(caught.value)
    assert not (tmp_path / "x.db").exists()
    assert list(store.work_dir.glob("fetch-*")) == list(store.work_dir.glob("push-*")) == []
    # a retry once the server is back goes through
    http_remote.server.mode = "up"
    retried = store.push(site.backup())
    assert store.list()[0].id == retried.id
    assert commits_on(http_remote.repo) == 2


def test_no_git_process_outlives_a_timeout(http_remote, site):
    import psutil

    store = make_store(http_remote, site, timeout=1.0)
    http_remote.server.mode = "hanging"
    with pytest.raises(OffsiteError):
        store.list()
    me = psutil.Process(os.getpid())
    lingering = [p for p in me.children(recursive=True) if "git" in p.name()]
    assert lingering == []


def test_the_token_is_sent_as_a_header_and_never_in_the_url(http_remote, site):
    store = make_store(http_remote, site)
    store.push(site.backup())
    received = http_remote.server.received
    assert received
    for request in received:
        assert request.headers.get("Authorization") == f"Basic {HEADER_B64}"
        assert TOKEN not in request.path and TOKEN not in request.query
