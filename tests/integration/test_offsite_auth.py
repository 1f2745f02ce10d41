"""An attacker with push access to the backup repository (a leaked token) cannot get a package
restored: forged packages are refused before anything is decrypted, and never deleted by us.
Also: bounds, future dates, a damaged newest package, old unauthenticated packages, and the
rotation hold after a fresh start. Real git: a bare repository, and the HTTP server."""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from pathlib import Path

import pytest

from tests.fakes.git_server import git_env
from tests.forgery import hostile_database, package_files
from tests.integration import test_offsite as base
from tests.integration.test_offsite import Site, blob, commits_on, git, make_store
from tests.runtime_context import runtime_context
from watchdog.data.snapshot import sha256_of
from watchdog.offsite import CLOCK_SKEW, OffsiteError
from watchdog.offsite import package as package_module
from watchdog.offsite import verify as verify_module
from watchdog.offsite.auth import MacKey
from watchdog.offsite.package import pack

pytestmark = pytest.mark.integration
BRANCH = "db-backups"
remote = base.remote  # the fixtures: a bare repository, and the authenticated HTTP server
site = base.site


# -- what an attacker with push access can do ------------------------------------------------


def run_git(repo: Path, *args: str, data: bytes | None = None) -> str:
    return (
        subprocess.run(
            ["git", "--git-dir", str(repo), *args],
            input=data,
            check=True,
            capture_output=True,
            timeout=30,
            env={
                **git_env(repo.parent),
                "GIT_AUTHOR_NAME": "x",
                "GIT_AUTHOR_EMAIL": "x@x",
                "GIT_COMMITTER_NAME": "x",
                "GIT_COMMITTER_EMAIL": "x@x",
            },
        )
        .stdout.decode()
        .strip()
    )


def plant(
    repo: Path,
    backup_id: str,
    files: dict[str, bytes],
    index_format: int = 2,
    index_fields: dict | None = None,
) -> str:
    """Commit a folder ``backup_id`` holding ``files`` on top of the branch, listed in its
    index (as a writer with the token could); returns the new tip."""
    tip = subprocess.run(
        ["git", "--git-dir", str(repo), "rev-parse", "--verify", "-q", f"refs/heads/{BRANCH}"],
        capture_output=True,
        text=True,
        timeout=30,
        env=git_env(repo.parent),
    ).stdout.strip()
    lines = []
    index = {"kind": "erixcast-offsite", "format": index_format, "branch": BRANCH, "entries": []}
    if tip:
        index = json.loads(blob(repo, f"{tip}:index.json"))
        for entry in index["entries"]:
            entry["commit"] = entry["commit"] or tip
        lines = [
            line
            for line in run_git(repo, "ls-tree", tip).splitlines()
            if line.split("\t")[1] not in ("index.json", backup_id)
        ]
    folder = run_git(
        repo,
        "mktree",
        data="".join(
            f"100644 blob {run_git(repo, 'hash-object', '-w', '--stdin', data=content)}\t{name}\n"
            for name, content in files.items()
        ).encode(),
    )
    index["entries"] = [e for e in index["entries"] if e["id"] != backup_id]
    index["entries"].append(
        {**(index_fields or {}), "id": backup_id, "commit": None, "tree": folder}
    )
    index_blob = run_git(repo, "hash-object", "-w", "--stdin", data=json.dumps(index).encode())
    lines += [f"100644 blob {index_blob}\tindex.json", f"040000 tree {folder}\t{backup_id}"]
    root = run_git(repo, "mktree", data=("\n".join(lines) + "\n").encode())
    commit = run_git(repo, "commit-tree", root, *(["-p", tip] if tip else []), "-m", "attack")
    run_git(repo, "update-ref", f"refs/heads/{BRANCH}", commit)
    return commit


def forged_package(
    site: Site, tmp_path: Path, backup_id: str, mac: MacKey, created_at: float
) -> tuple[dict[str, bytes], bytes]:
    """A package with a valid age envelope to the operator's public key (anyone may make one),
    MAC'd under ``mac``. Returns its files and the sealed manifest."""
    source = hostile_database(tmp_path / "hostile.db")
    folder = tmp_path / f"forge-{backup_id}"
    folder.mkdir()
    genuine = site.backup().manifest  # the shape of a real manifest, with the hostile file's facts
    manifest = json.loads(genuine.to_json())
    recipient = site.identity.to_public()
    return package_files(source, manifest, recipient, mac, folder, backup_id, created_at)


@pytest.fixture
def no_decryption(monkeypatch):
    """Fails the test if anything is decrypted."""

    def refuse(*args, **kwargs):
        raise AssertionError("decryption ran on a package that did not authenticate")

    monkeypatch.setattr(verify_module, "decrypt_bytes", refuse)
    monkeypatch.setattr(package_module, "decrypt_stream", refuse)


# -- forged packages ---------------------------------------------------------------------------


def test_a_forged_package_is_refused_before_any_decryption(remote, site, tmp_path, no_decryption):
    attacker = MacKey(b"\x01" * 32)  # any key but the operator's
    files, _ = forged_package(
        site, tmp_path, "20990101T000000Z-daily-evil01", attacker, time.time() + 86400 * 365
    )
    plant(remote.repo, "20990101T000000Z-daily-evil01", files)
    store = make_store(remote, site)
    found = store.candidates()
    assert found.entries == ()
    [refused] = found.refused
    assert (refused.id, refused.kind) == ("20990101T000000Z-daily-evil01", "forged")
    assert "MAC does not verify" in refused.reason
    dest = tmp_path / "restore" / "erixcast.db"
    for wanted in (None, "20990101T000000Z-daily-evil01"):
        with pytest.raises(OffsiteError) as caught:
            store.fetch(wanted, dest)
        assert caught.value.kind == "forged"
    assert not dest.parent.exists()
    assert store.list() == []


def test_genuine_parts_with_an_altered_manifest_are_refused_and_kept(remote, site, tmp_path):
    store = make_store(remote, site, keep=2)
    genuine = store.push(site.backup())
    # Copy the genuine package, swap in a manifest of the attacker's (a later date, another
    # sha256) and keep the genuine MAC: the MAC covers the manifest's hash, so it fails.
    folder = f"refs/heads/{BRANCH}:{genuine.id}"
    names = git(remote.repo, "ls-tree", "--name-only", folder).split()
    files = {name: blob(remote.repo, f"{folder}/{name}") for name in names}
    document = json.loads(files["package.json"])
    fake = json.loads(site.backup().manifest.to_json())
    forged_id = "20990101T000000Z-weekly-evil02"
    fake.update(id=forged_id, created_at=time.time() + 60)
    sealed = package_module.encrypt_bytes(json.dumps(fake).encode(), site.identity.to_public())
    document.update(
        id=forged_id,
        manifest={
            "name": "manifest.age",
            "size": len(sealed),
            "sha256": hashlib.sha256(sealed).hexdigest(),
        },
    )
    files.update({"manifest.age": sealed, "package.json": json.dumps(document).encode()})
    plant(remote.repo, forged_id, files)

    found = store.candidates()
    assert [entry.id for entry in found.entries] == [genuine.id]
    assert [(r.id, r.kind) for r in found.refused] == [(forged_id, "forged")]
    dest = tmp_path / "x.db"
    assert store.fetch(None, dest).id == genuine.id
    # Pushes go on, rotate our own packages, and never remove the refused one.
    for _ in range(3):
        store.push(site.backup())
    index = json.loads(blob(remote.repo, f"refs/heads/{BRANCH}:index.json"))
    assert forged_id in [entry["id"] for entry in index["entries"]]
    assert [r.id for r in store.last_refused] == [forged_id]
    assert len(store.list()) == 2
    assert blob(remote.repo, f"refs/heads/{BRANCH}:{forged_id}/manifest.age") == sealed


# -- dates and damage ---------------------------------------------------------------------------


def test_a_future_dated_package_is_never_the_newest(remote, site, tmp_path):
    store = make_store(remote, site)
    normal = store.push(site.backup())
    site.clock = time.time() + CLOCK_SKEW + 3600  # a clock that ran ahead
    ahead = store.push(site.backup())
    found = store.candidates()
    assert [entry.id for entry in found.entries] == [normal.id, ahead.id]
    assert found.entries[1].future and not found.entries[0].future
    assert store.fetch(None, tmp_path / "x.db").id == normal.id
    assert store.fetch(ahead.id, tmp_path / "y.db").id == ahead.id  # by name, it is usable


def test_a_damaged_newest_package_and_a_good_older_one(remote, site, tmp_path):
    store = make_store(remote, site)
    good = store.push(site.backup())
    damaged = site.backup()
    data = bytearray(damaged.data_path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # the bytes no longer match the manifest's sha256
    damaged.data_path.write_bytes(bytes(data))
    store.push(damaged)
    found = store.candidates()
    assert [entry.id for entry in found.entries] == [damaged.id, good.id]
    assert found.refused == ()
    with pytest.raises(OffsiteError, match="does not match its sha256") as caught:
        store.fetch(damaged.id, tmp_path / "bad.db")
    assert caught.value.kind == "corrupt"
    assert not (tmp_path / "bad.db").exists()
    dest = tmp_path / "good.db"
    assert store.fetch(good.id, dest).sha256 == sha256_of(dest) == good.sha256


# -- packages from before MACs -----------------------------------------------------------------


def test_old_unauthenticated_packages_only_on_the_opt_in(remote, site, tmp_path):
    backup = site.backup()
    folder = tmp_path / "old"
    folder.mkdir()
    recipient = site.identity.to_public()
    parts, paths = pack(backup.data_path, compressed=False, recipient=recipient, folder=folder)
    old_package = {
        "encrypted": True,
        "recipient": str(recipient),
        "compression": "zstd",
        "stored_size": sum(p.size for p in parts),
        "parts": [vars(p) for p in parts],
        "format": 1,
    }
    files = {p.name: path.read_bytes() for p, path in zip(parts, paths, strict=True)}
    files["manifest.json"] = backup.manifest.to_json().encode()
    files["package.json"] = json.dumps(old_package).encode()
    fields = {
        "tier": backup.tier,
        "created_at": backup.created_at,
        "size_bytes": backup.manifest.size_bytes,
        "sha256": backup.manifest.sha256,
        "parts": len(parts),
        "stored_size": old_package["stored_size"],
        "encrypted": True,
    }
    plant(remote.repo, backup.id, files, index_format=1, index_fields=fields)

    store = make_store(remote, site, keep=1)
    assert store.list() == []
    assert [(r.id, r.kind) for r in store.candidates().refused] == [(backup.id, "unauthenticated")]
    with pytest.raises(OffsiteError, match="--allow-unauthenticated") as caught:
        store.fetch(None, tmp_path / "x.db")
    assert caught.value.kind == "unauthenticated"
    # A new push keeps the old package (we cannot judge it, so we do not delete it).
    newer = store.push(site.backup())
    assert [r.id for r in store.last_refused] == [backup.id]
    opted = make_store(remote, site, allow_unauthenticated=True, cache_dir=tmp_path / "o.git")
    entries = opted.candidates().entries
    assert [(e.id, e.authenticated) for e in entries] == [(newer.id, True), (backup.id, False)]
    dest = tmp_path / "old.db"
    assert opted.fetch(backup.id, dest).sha256 == sha256_of(dest) == backup.manifest.sha256


# -- the rotation hold after a fresh start -----------------------------------------------------


def test_a_fresh_start_keeps_every_package_until_released(remote, site, tmp_path):
    keep = 3
    store = make_store(remote, site, keep=keep)
    held = [store.push(site.backup("hourly"), rotate=False) for _ in range(keep + 2)]
    assert commits_on(remote.repo) == keep + 2
    assert {entry.id for entry in store.list()} == {entry.id for entry in held}
    released = store.push(site.backup("hourly"))  # rotation resumes: back to keep
    assert commits_on(remote.repo) == keep
    assert [entry.id for entry in store.list()] == [released.id, held[-1].id, held[-2].id]


def test_the_watchdog_holds_rotation_after_a_fresh_start_until_released(
    remote, site, tmp_path, monkeypatch
):
    """Maintenance → store.push with the real store: held while ``fresh_start_at`` is
    remembered, rotating again once an operator released it (the admin API's call)."""
    import asyncio

    from watchdog.data.catalogue import Catalogue
    from watchdog.data.remembered import RememberedStore
    from watchdog.runtime.maintenance import Maintenance

    remembered = RememberedStore(site.layout.state_file)
    remembered.update(fresh_start_at=site.clock, fresh_start_reason="no usable backup")
    ctx = runtime_context(monkeypatch, site.root, remembered=remembered, ensure=False)
    clock, state = ctx.clock, ctx.state
    keep = 2
    maintenance = Maintenance(ctx, Catalogue(site.layout), make_store(remote, site, keep=keep))

    def one_push() -> None:
        backup = site.backup("manual")
        clock.now = backup.created_at + 3 * 86400
        asyncio.run(maintenance.push_offsite_if_due())
        assert state.offsite.newest_id == backup.id, state.offsite.last_error

    for _ in range(keep + 2):
        one_push()
    assert commits_on(remote.repo) == keep + 2
    assert state.offsite.rotation_held_since == site.clock - 60 * (keep + 2)
    assert maintenance.release_rotation_hold() is not None
    assert remembered.load().fresh_start_at is None and state.offsite.rotation_held_since is None
    one_push()
    assert commits_on(remote.repo) == keep


# -- package metadata of shapes we never write ---------------------------------------------------

MAC_NAME = "hmac-sha256/hkdf-sha256:erixcast offsite package mac v1"


@pytest.mark.parametrize(
    "package_json",
    [
        b'{"format": 2, "id": "20990101T000000Z-daily-evil01", "x": NaN, "mac": {"algorithm": "'
        + MAC_NAME.encode()
        + b'", "value": "00"}}',
        b"[" * 200_000 + b"]" * 200_000,
        b'{"format": 2, "mac": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        b"\xff\xfe not even text",
    ],
    ids=["nan", "deep-array", "deep-mac", "not-utf8"],
)
def test_a_package_of_a_shape_we_never_write_is_refused_and_the_genuine_one_still_works(
    remote, site, tmp_path, package_json
):
    store = make_store(remote, site)
    genuine = store.push(site.backup())
    plant(
        remote.repo,
        "20990101T000000Z-daily-evil01",
        {"package.json": package_json, "manifest.age": b"x"},
    )
    found = store.candidates()
    assert [entry.id for entry in found.entries] == [genuine.id]
    assert [package.id for package in found.refused] == ["20990101T000000Z-daily-evil01"]
    manifest = store.fetch(None, tmp_path / "restored.db")
    assert manifest.id == genuine.id
    assert store.push(site.backup()).id != genuine.id  # pushing goes on too


def test_a_malformed_index_is_an_error_never_a_crash(remote, site):
    store = make_store(remote, site)
    store.push(site.backup())
    plant(remote.repo, "20990101T000000Z-daily-evil02", {"package.json": b"{}"})
    tip = run_git(remote.repo, "rev-parse", f"refs/heads/{BRANCH}")
    bad_index = run_git(
        remote.repo,
        "hash-object",
        "-w",
        "--stdin",
        data=b'{"kind": "erixcast-offsite", "format": 2, "entries": 5}',
    )
    tree = run_git(remote.repo, "mktree", data=f"100644 blob {bad_index}\tindex.json\n".encode())
    commit = run_git(remote.repo, "commit-tree", tree, "-p", tip, "-m", "x")
    run_git(remote.repo, "update-ref", f"refs/heads/{BRANCH}", commit)
    with pytest.raises(OffsiteError) as caught:
        store.candidates()
    assert caught.value.kind in ("corrupt", "foreign")
