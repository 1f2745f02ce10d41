"""The offsite store's pure parts: packing, the git environment, settings checks."""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

import pytest
from pyrage import x25519

from watchdog.offsite import OffsiteError, OffsiteStore
from watchdog.offsite.git import GitRunner, Result, check_url
from watchdog.offsite.package import (
    MANIFEST_BLOB,
    MAX_PART_SIZE,
    PART_SIZE,
    Package,
    Part,
    check_part_size,
    pack,
    parse_identity,
    unpack,
)

TOKEN = "ghp_unitTestToken0123456789abcdef"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- packing -------------------------------------------------------------------------------


@pytest.fixture
def identity() -> x25519.Identity:
    return x25519.Identity.generate()


def packed(source: Path, folder: Path, identity: x25519.Identity, **options) -> tuple:
    """``pack`` and the (format 2) package describing its parts."""
    folder.mkdir(exist_ok=True)
    parts, paths = pack(source, recipient=identity.to_public(), folder=folder, **options)
    package = Package(
        encrypted=True,
        recipient=str(identity.to_public()),
        compression="zstd",
        stored_size=sum(part.size for part in parts),
        parts=parts,
        id="b1",
        manifest=Part(MANIFEST_BLOB, 100, "0" * 64),
    )
    return package, paths


def payload(tmp_path: Path, size: int) -> Path:
    path = tmp_path / "plain.bin"
    with path.open("wb") as handle:  # half compressible, half not
        handle.write(os.urandom(size // 2))
        handle.write(b"erixcast " * ((size - size // 2) // 9))
    return path


@pytest.mark.parametrize("part_size", [1024, 50_000, PART_SIZE])
def test_pack_unpack_round_trip_in_parts(tmp_path, identity, part_size):
    source = payload(tmp_path, 300_000)
    package, paths = packed(
        source, tmp_path / "parts", identity, compressed=False, part_size=part_size
    )
    assert package.encrypted and package.recipient == str(identity.to_public())
    assert len(paths) == len(package.parts) == -(-package.stored_size // part_size)
    assert all(path.stat().st_size <= part_size for path in paths)
    assert all(part.name.endswith(".zst.age") for part in package.parts)
    assert Package.from_dict(package.to_dict(), "b1") == package
    target = tmp_path / "back.bin"
    unpack("x", package, paths, identity, target, size_limit=source.stat().st_size)
    assert sha256(target) == sha256(source)


def test_an_old_plaintext_package_still_unpacks(tmp_path):
    """Format 1 packages may be unencrypted; they are read only on an operator's opt-in."""
    import zstandard

    source = tmp_path / "plain.bin"
    source.write_bytes(b"hello offsite " * 50_000)
    part = tmp_path / "part-0000.zst"
    part.write_bytes(zstandard.ZstdCompressor().compress(source.read_bytes()))
    old = {
        "encrypted": False,
        "recipient": None,
        "compression": "zstd",
        "stored_size": part.stat().st_size,
        "parts": [{"name": part.name, "size": part.stat().st_size, "sha256": sha256(part)}],
    }
    package = Package.from_dict(old)
    assert package.format == 1 and not package.encrypted
    target = tmp_path / "back.bin"
    unpack("x", package, [part], None, target, size_limit=source.stat().st_size)
    assert target.read_bytes() == source.read_bytes()


def test_an_already_compressed_backup_is_not_compressed_twice(tmp_path, identity):
    import zstandard

    plain = payload(tmp_path, 100_000)
    packed_file = tmp_path / "b.db.zst"
    packed_file.write_bytes(zstandard.ZstdCompressor().compress(plain.read_bytes()))
    package, paths = packed(packed_file, tmp_path / "parts", identity, compressed=True)
    # age adds a small header and 16 bytes per 64 KiB chunk, nothing more
    assert package.stored_size - packed_file.stat().st_size < 1024
    target = tmp_path / "back.bin"
    unpack("x", package, paths, identity, target, size_limit=plain.stat().st_size)
    assert target.read_bytes() == plain.read_bytes()


def test_wrong_key_is_a_clear_error(tmp_path, identity):
    source = payload(tmp_path, 10_000)
    package, paths = packed(source, tmp_path / "parts", identity, compressed=False)
    other = x25519.Identity.generate()
    with pytest.raises(OffsiteError) as caught:
        unpack("b1", package, paths, other, tmp_path / "out", size_limit=10_000)
    assert caught.value.kind == "key"
    assert "age key does not open" in str(caught.value)
    assert str(identity.to_public()) in str(caught.value)
    assert str(other) not in str(caught.value)
    with pytest.raises(OffsiteError, match="BACKUP_AGE_KEY is needed") as caught:
        unpack("b1", package, paths, None, tmp_path / "out", size_limit=10_000)
    assert caught.value.kind == "key"


def test_a_damaged_part_is_named(tmp_path, identity):
    source = payload(tmp_path, 20_000)
    package, paths = packed(source, tmp_path / "parts", identity, compressed=False, part_size=4096)
    data = bytearray(paths[1].read_bytes())
    data[100] ^= 0xFF
    paths[1].write_bytes(bytes(data))
    with pytest.raises(OffsiteError, match=r"part part-0001\.zst\.age is corrupt") as caught:
        unpack("b1", package, paths, identity, tmp_path / "out", size_limit=20_000)
    assert caught.value.kind == "corrupt"
    with pytest.raises(OffsiteError, match="parts are missing"):
        unpack("b1", package, paths[:-1], identity, tmp_path / "out", size_limit=20_000)


def test_part_size_stays_under_45_mb():
    assert PART_SIZE < MAX_PART_SIZE == 45_000_000
    assert check_part_size(MAX_PART_SIZE - 1) == MAX_PART_SIZE - 1
    for bad in (MAX_PART_SIZE, 100_000_000, 0, 10):
        with pytest.raises(ValueError):
            check_part_size(bad)


def test_age_identity_parsing(identity):
    key = str(identity)
    assert str(parse_identity(key).to_public()) == str(identity.to_public())
    keygen_file = f"# created: 2026-01-01\n# public key: {identity.to_public()}\n{key}\n"
    assert str(parse_identity(keygen_file).to_public()) == str(identity.to_public())
    for bad in ("", "age1abc", "AGE-SECRET-KEY-1NOTVALID", f"{key}\n{key}"):
        with pytest.raises(OffsiteError) as caught:
            parse_identity(bad)
        assert caught.value.kind == "config"
        assert "AGE-SECRET-KEY-1NOTVALID" not in str(caught.value)
        assert key not in str(caught.value)


# -- the git environment -------------------------------------------------------------------


def runner(url: str = "https://git.example.com/o/r.git", token: str | None = TOKEN) -> GitRunner:
    return GitRunner(url, token=token, timeout=5, local_timeout=5)


def test_the_token_travels_in_the_environment_only_and_only_to_the_network():
    git = runner()
    env = git.environment(network=True)
    header = "Authorization: Basic " + base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()
    keys = {env[f"GIT_CONFIG_KEY_{i}"]: i for i in range(int(env["GIT_CONFIG_COUNT"]))}
    slot = keys["http.https://git.example.com/o/r.git.extraheader"]
    assert env[f"GIT_CONFIG_VALUE_{slot}"] == header
    assert env["GIT_TERMINAL_PROMPT"] == "0"
    assert env["GIT_ASKPASS"] == ""
    assert env[f"GIT_CONFIG_VALUE_{keys['credential.helper']}"] == ""
    assert not any(TOKEN in value for value in env.values())  # only its base64 form
    local = git.environment(network=False)
    assert not any(header in value or "extraheader" in value for value in local.values())


def test_inherited_git_tracing_is_not_passed_on(monkeypatch):
    monkeypatch.setenv("GIT_TRACE_CURL", "1")
    monkeypatch.setenv("GIT_TRACE_REDACT", "0")
    monkeypatch.setenv("GIT_CONFIG_PARAMETERS", "'http.extraheader=x'")
    env = runner().environment(network=True)
    assert "GIT_TRACE_CURL" not in env and "GIT_TRACE_REDACT" not in env
    assert "GIT_CONFIG_PARAMETERS" not in env


def test_no_header_for_non_http_urls():
    env = runner("/srv/backups.git").environment(network=True)
    assert not any("extraheader" in value for value in env.values())


def test_errors_are_scrubbed_and_classified():
    git = runner()
    header = "Authorization: Basic " + base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()
    stderr = (
        f"fatal: unable to access 'https://x-access-token:{TOKEN}@git.example.com/o/r.git/': "
        f"The requested URL returned error: 403\n> {header}\ntoken={TOKEN}\n"
    )
    error = git.failure("pushing", Result(128, b"", stderr))
    assert error.kind == "auth"
    text = str(error)
    assert TOKEN not in text and header.split()[-1] not in text
    assert "pushing: the git server refused the credentials" in text
    assert git.failure("x", Result(128, b"", "Could not resolve host: nowhere")).kind == (
        "unreachable"
    )
    assert git.failure("x", Result(128, b"", "remote: Repository not found.")).kind == "not_found"
    assert git.failure("x", Result(1, b"", "something odd")).kind == "git"


def test_urls_that_would_leak_the_token_are_refused():
    with pytest.raises(OffsiteError, match="must not contain credentials"):
        check_url(f"https://x-access-token:{TOKEN}@github.com/o/r.git", has_token=False)
    with pytest.raises(OffsiteError, match="plain http"):
        check_url("http://git.example.com/o/r.git", has_token=True)
    check_url("http://127.0.0.1:8080/r.git", has_token=True)
    check_url("http://git.example.com/o/r.git", has_token=False)
    check_url("/srv/backups.git", has_token=False)
    check_url("https://github.com/o/r.git", has_token=True)


def test_a_timeout_kills_git_and_says_so(tmp_path):
    git = GitRunner("/nowhere", token=None, timeout=0.5, local_timeout=0.5)
    import time

    # a shell alias makes git itself run something slow, in git's own process group

    started = time.monotonic()
    with pytest.raises(OffsiteError, match=r"timed out after 0\.5 s") as caught:
        git.run(["-c", "alias.slow=!sleep 30", "slow"], what="slow git", extra_env={"HOME": "/"})
    assert caught.value.kind == "timeout"
    assert time.monotonic() - started < 5


# -- building a store ----------------------------------------------------------------------


def store(tmp_path: Path, **overrides) -> OffsiteStore:
    options = {
        "token": TOKEN,
        "age_identity": None,
        "allow_plaintext": False,
        "keep": 3,
        "timeout": 5.0,
    }
    options.update(overrides)
    return OffsiteStore(
        "https://github.com/o/r.git", "db-backups", tmp_path / "offsite" / "cache.git", **options
    )


def test_no_age_key_no_push_even_when_plaintext_is_allowed(tmp_path):
    # No age key means no MAC key: a package nobody can authenticate is never pushed.
    with pytest.raises(OffsiteError, match="BACKUP_AGE_KEY") as caught:
        store(tmp_path)
    assert caught.value.kind == "config"
    with pytest.raises(OffsiteError, match="BACKUP_GIT_ALLOW_PLAINTEXT no longer") as caught:
        store(tmp_path, allow_plaintext=True)
    assert caught.value.kind == "config"
    assert store(tmp_path, read_only=True).recipient is None
    identity = x25519.Identity.generate()
    assert store(tmp_path, age_identity=str(identity)).recipient == str(identity.to_public())


def test_bad_settings_are_refused_without_showing_secrets(tmp_path):
    with pytest.raises(OffsiteError) as caught:
        store(tmp_path, age_identity="AGE-SECRET-KEY-1BROKEN")
    assert "AGE-SECRET-KEY-1BROKEN" not in str(caught.value)
    with pytest.raises(OffsiteError, match="KEEP"):
        store(tmp_path, read_only=True, keep=0)
    for branch in ("", "-x", "a..b", "a b", "refs/heads/x", "x.lock"):
        with pytest.raises(OffsiteError, match="BACKUP_GIT_BRANCH"):
            OffsiteStore(
                "/srv/r.git",
                branch,
                tmp_path / "c.git",
                token=None,
                age_identity=None,
                allow_plaintext=False,
                read_only=True,
                keep=3,
                timeout=5,
            )


def test_from_settings(tmp_path, monkeypatch):
    from conf.settings import Settings

    for name in list(os.environ):
        if name.startswith("BACKUP_"):
            monkeypatch.delenv(name)
    identity = x25519.Identity.generate()
    base = {"data_dir": tmp_path / "data", "_env_file": None}
    assert OffsiteStore.from_settings(Settings(**base)) is None
    settings = Settings(
        **base,
        backup_git_url="https://github.com/o/r.git",
        backup_git_token=TOKEN,
        backup_age_key=str(identity),
        backup_git_keep=4,
        backup_git_timeout="30s",
    )
    built = OffsiteStore.from_settings(settings)
    assert built is not None
    assert built.cache_dir == (tmp_path / "data").resolve() / "offsite" / "cache.git"
    assert (built.keep, built.timeout, built.branch) == (4, 30.0, "db-backups")
    assert built.recipient == str(identity.to_public())


# -- the branch's index is input ---------------------------------------------------------------


def _index_entry(**changes: object) -> dict:
    entry = {
        "id": "20261201T000000Z-hourly-abc123",
        "tier": "hourly",
        "created_at": 1_800_000_000.0,
        "size_bytes": 4096,
        "sha256": "0" * 64,
        "parts": 1,
        "stored_size": 100,
        "encrypted": True,
        "commit": "a" * 40,
        "tree": "b" * 40,
    }
    entry.update(changes)
    return entry


def test_an_index_entry_of_ours_is_read():
    from watchdog.offsite.index import IndexEntry

    entry = IndexEntry.from_index({"id": "b-1", "commit": None, "tree": "b" * 40}, "c" * 40, 2)
    assert (entry.id, entry.commit, entry.legacy) == ("b-1", "c" * 40, None)
    old = IndexEntry.from_index(_index_entry(), "c" * 40, 1)  # format 1: kept as it was
    assert old.id.endswith("abc123") and old.legacy is not None
    assert old.to_index(old.commit)["created_at"] == 1_800_000_000.0


@pytest.mark.parametrize(
    "changes",
    [
        {"commit": "--upload-pack=touch /tmp/pwned"},  # would reach git fetch as an option
        {"commit": "HEAD"},
        {"tree": "../../etc"},
        {"id": "../escape"},
        {"id": "-rf"},
        {"id": "a/b"},
    ],
)
def test_an_index_entry_naming_options_or_paths_is_refused(changes):
    from watchdog.offsite.index import IndexEntry

    for form in (1, 2):
        with pytest.raises(ValueError):
            IndexEntry.from_index(_index_entry(**changes), "c" * 40, form)


# -- authenticity: the MAC key and what it covers ---------------------------------------------


def test_hkdf_sha256_matches_rfc_5869():
    from watchdog.offsite.auth import hkdf_sha256

    okm = hkdf_sha256(
        bytes([0x0B] * 22), salt=bytes(range(13)), info=bytes(range(0xF0, 0xFA)), length=42
    )
    assert okm.hex() == (
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
    )
    okm = hkdf_sha256(bytes([0x0B] * 22), salt=b"", info=b"", length=42)  # test case 3
    assert okm.hex() == (
        "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"
    )


def test_the_mac_key_is_the_identity_s_and_covers_every_field(identity):
    from watchdog.offsite.auth import MacKey, is_authentic, seal

    key = MacKey.from_identity(identity)
    assert "redacted" in repr(key) and str(identity) not in repr(key)
    assert MacKey.from_identity(parse_identity(str(identity))).sign({"a": 1}) == key.sign({"a": 1})
    document = {"id": "b1", "parts": [{"name": "part-0000.zst.age", "size": 5, "sha256": "0"}]}
    sealed = seal(document, key)
    assert is_authentic(sealed, key)
    assert not is_authentic(sealed, MacKey.from_identity(x25519.Identity.generate()))
    for changed in ({"id": "b2"}, {"parts": []}, {"extra": True}):
        assert not is_authentic({**sealed, **changed}, key)
    assert not is_authentic({**sealed, "mac": {**sealed["mac"], "algorithm": "none"}}, key)
    assert not is_authentic({k: v for k, v in sealed.items() if k != "mac"}, key)


# -- bounds before work -------------------------------------------------------------------------


def _package_document(**changes: object) -> dict:
    part = {"name": "part-0000.zst.age", "size": 10, "sha256": "a" * 64}
    document = {
        "format": 2,
        "kind": "erixcast-offsite-package",
        "id": "b1",
        "encrypted": True,
        "recipient": "age1x",
        "compression": "zstd",
        "stored_size": 10,
        "parts": [part],
        "manifest": {"name": MANIFEST_BLOB, "size": 10, "sha256": "b" * 64},
    }
    document.update(changes)
    return document


def test_a_well_formed_package_is_read():
    assert Package.from_dict(_package_document(), "b1").parts[0].name == "part-0000.zst.age"


@pytest.mark.parametrize(
    "name", ["../part-0000.zst.age", "a/part-0000.zst.age", "/etc/passwd", "..", "part-0000.zst/.."]
)
def test_part_names_that_are_paths_are_refused(name):
    part = {"name": name, "size": 10, "sha256": "a" * 64}
    with pytest.raises(ValueError, match="unsafe part name"):
        Package.from_dict(_package_document(parts=[part]), "b1")


@pytest.mark.parametrize(
    "changes",
    [
        {"stored_size": 11},  # parts and total disagree
        {"parts": []},
        {"parts": [{"name": "part-0000.zst.age", "size": MAX_PART_SIZE, "sha256": "a" * 64}]},
        {"parts": [{"name": "part-0000.zst.age", "size": -1, "sha256": "a" * 64}]},
        {"parts": [{"name": "part-0000.zst.age", "size": 10, "sha256": "x"}]},
        {"parts": [{"name": "part-0000.zst.age", "size": 5, "sha256": "a" * 64}] * 2},
        {"id": "b2"},  # names another backup than its folder
        {"manifest": {"name": "../m", "size": 10, "sha256": "b" * 64}},
        {"manifest": {"name": MANIFEST_BLOB, "size": 10**9, "sha256": "b" * 64}},
        {"encrypted": False},
        {"compression": "gzip"},
        {"format": 3},
    ],
)
def test_packages_out_of_bounds_are_refused(changes):
    with pytest.raises((ValueError, KeyError, TypeError)):
        Package.from_dict(_package_document(**changes), "b1")


def _bomb(tmp_path: Path, identity: x25519.Identity) -> tuple[Package, list[Path]]:
    """200 MiB of zeros in a few KB of zstd, age-encrypted: as if authenticated."""
    import pyrage
    import zstandard

    compressor = zstandard.ZstdCompressor(level=19)
    data = compressor.compress(bytes(200 * 1024 * 1024))
    assert len(data) < 10_000
    path = tmp_path / "part-0000.zst.age"
    path.write_bytes(pyrage.encrypt(data, [identity.to_public()]))
    part = Part(path.name, path.stat().st_size, sha256(path))
    package = Package(True, str(identity.to_public()), "zstd", part.size, (part,), 2, "b1")
    return package, [path]


def test_a_zstd_bomb_stops_at_the_manifest_s_size(tmp_path, identity):
    import shutil

    package, paths = _bomb(tmp_path, identity)
    target = tmp_path / "out" / "bomb.db"
    target.parent.mkdir()
    free_before = shutil.disk_usage(tmp_path).free
    with pytest.raises(OffsiteError, match="decompresses past its manifest's size") as caught:
        unpack("b1", package, paths, identity, target, size_limit=6 * 1024)
    assert caught.value.kind == "corrupt"
    assert not target.exists()
    # at most the limit (and a chunk) was ever written, and it is gone
    assert shutil.disk_usage(tmp_path).free >= free_before - 8 * 1024 * 1024


def test_no_unpack_without_room_for_the_database(tmp_path, identity, monkeypatch):
    from watchdog.offsite import package as package_module

    package, paths = _bomb(tmp_path, identity)
    monkeypatch.setattr(package_module, "free_bytes", lambda path: 10**6)
    target = tmp_path / "out" / "x.db"
    with pytest.raises(OffsiteError, match=r"needs 200\.0 MB free") as caught:
        unpack("b1", package, paths, identity, target, size_limit=200 * 1024 * 1024)
    assert caught.value.kind == "space"
    assert not target.exists()
