"""The offsite store: verified backups on a dedicated branch of a git repository.

The branch is a chain of at most ``keep`` commits, oldest first, each holding one backup::

    index.json                      the chain up to this commit (ids, sizes, commits, trees)
    <backup id>/manifest.json       the catalogue manifest (sha256 of the plain database …)
    <backup id>/package.json        how it is stored: encrypted to which recipient, the parts
    <backup id>/part-0000.zst.age   zstandard, then age, split into parts < 45 MB

so a depth-1 fetch of the tip gives the newest backup and the list of all of them. A push
rebuilds the chain from the kept backups' trees (already on the server, so only the new backup
travels) plus the new one and force-pushes it with a lease: history never grows past ``keep``
commits, and a push that raced another writer is rejected rather than lost.

Writing happens in a bare cache repository under DATA_DIR (never the code checkout) with
plumbing only — ``hash-object``, ``mktree``, ``commit-tree``, ``update-ref`` — so there is no
working tree. Restores fetch into a fresh temporary bare repository and never trust the cache.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import git

from conf.units import MIB
from watchdog.data.catalogue import Backup, Manifest
from watchdog.data.fs import FileLock, LockBusy, fsync_dir
from watchdog.data.snapshot import integrity_problem, sha256_of
from watchdog.offsite.errors import OffsiteError
from watchdog.offsite.git import GitRunner, check_url
from watchdog.offsite.package import (
    PART_SIZE,
    Package,
    check_part_size,
    pack,
    parse_identity,
    unpack,
)

log = logging.getLogger(__name__)

INDEX = "index.json"
INDEX_KIND = "erixcast-offsite"
INDEX_FORMAT = 1
CACHE_REF = "refs/offsite/remote"
FETCH_REF = "refs/offsite/tip"
LOCAL_TIMEOUT_MIN = 600.0
"""Local git calls (hashing big parts, pruning) are bounded too, but not by the network timeout."""


def cache_dir_for(data_root: Path) -> Path:
    """Where the cache repository lives: ``DATA_DIR/offsite/cache.git``."""
    return data_root / "offsite" / "cache.git"


@dataclass(frozen=True)
class OffsiteEntry:
    id: str
    tier: str
    created_at: float
    size_bytes: int
    """Of the plain database."""
    sha256: str
    """Of the plain database."""
    parts: int
    stored_size: int
    """Bytes on the branch (compressed, encrypted, all parts)."""
    encrypted: bool
    commit: str
    tree: str

    @property
    def created_iso(self) -> str:
        return datetime.fromtimestamp(self.created_at, UTC).isoformat(timespec="seconds")

    def to_index(self, commit: str | None) -> dict[str, Any]:
        return {
            "id": self.id,
            "tier": self.tier,
            "created_at": self.created_at,
            "size_bytes": self.size_bytes,
            "sha256": self.sha256,
            "parts": self.parts,
            "stored_size": self.stored_size,
            "encrypted": self.encrypted,
            "commit": commit,
            "tree": self.tree,
        }

    @classmethod
    def from_index(cls, data: dict[str, Any], commit: str) -> OffsiteEntry:
        return cls(
            id=str(data["id"]),
            tier=str(data["tier"]),
            created_at=float(data["created_at"]),
            size_bytes=int(data["size_bytes"]),
            sha256=str(data["sha256"]),
            parts=int(data["parts"]),
            stored_size=int(data["stored_size"]),
            encrypted=bool(data["encrypted"]),
            commit=str(data.get("commit") or commit),
            tree=str(data["tree"]),
        )


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


class OffsiteStore:
    def __init__(
        self,
        url: str,
        branch: str,
        cache_dir: Path,
        *,
        token: str | None,
        age_identity: str | None,
        allow_plaintext: bool,
        keep: int,
        timeout: float,
        part_size: int = PART_SIZE,
        work_dir: Path | None = None,
        read_only: bool = False,
    ) -> None:
        """``read_only`` stores only list and fetch (no age key needed to list). A store for
        pushing refuses to exist without an age key unless plaintext is explicitly allowed."""
        check_url(url, has_token=bool(token))
        if keep < 1:
            raise OffsiteError("BACKUP_GIT_KEEP must be at least 1", "config")
        if timeout <= 0:
            raise OffsiteError("BACKUP_GIT_TIMEOUT must be positive", "config")
        self.url = url
        self.branch = branch
        self.cache_dir = cache_dir
        self.work_dir = work_dir if work_dir is not None else cache_dir.parent
        self.keep = keep
        self.timeout = timeout
        self.part_size = check_part_size(part_size)
        self.read_only = read_only
        self.allow_plaintext = allow_plaintext
        self._identity = parse_identity(age_identity) if age_identity else None
        self._recipient = self._identity.to_public() if self._identity is not None else None
        if self._identity is None and not allow_plaintext and not read_only:
            raise OffsiteError(
                "offsite backups need BACKUP_AGE_KEY (an age identity, AGE-SECRET-KEY-1…) to "
                "encrypt what leaves the machine; set BACKUP_GIT_ALLOW_PLAINTEXT=true to push "
                "unencrypted backups instead",
                "config",
            )
        self._git = GitRunner(
            url,
            token=token,
            timeout=timeout,
            local_timeout=max(LOCAL_TIMEOUT_MIN, timeout),
            secrets=[age_identity] if age_identity else [],
        )
        self._check_branch(branch)

    @classmethod
    def from_settings(cls, settings: Any, *, read_only: bool = False) -> OffsiteStore | None:
        """The store the settings describe, or None when offsite is off (no BACKUP_GIT_URL)."""
        if not settings.backup_git_url:
            return None
        token = settings.backup_git_token
        key = settings.backup_age_key
        return cls(
            settings.backup_git_url,
            settings.backup_git_branch,
            cache_dir_for(settings.data_dir),
            token=token.get_secret_value() if token is not None else None,
            age_identity=key.get_secret_value() if key is not None else None,
            allow_plaintext=settings.backup_git_allow_plaintext,
            keep=settings.backup_git_keep,
            timeout=settings.backup_git_timeout,
            read_only=read_only,
        )

    @property
    def recipient(self) -> str | None:
        """The age public key backups are encrypted to (safe to show)."""
        return str(self._recipient) if self._recipient is not None else None

    def _check_branch(self, branch: str) -> None:
        bad = (
            not branch
            or branch.startswith(("-", "/", "refs/"))
            or any(char.isspace() or char in "~^:?*[\\" for char in branch)
            or ".." in branch
            or branch.endswith((".lock", "/", "."))
        )
        if bad:
            raise OffsiteError(f"BACKUP_GIT_BRANCH {branch!r} is not a valid branch name", "config")

    # -- public API --------------------------------------------------------------------------

    def push(self, backup: Backup) -> OffsiteEntry:
        """Put one verified backup on the branch (idempotent). Raises OffsiteError."""
        if self.read_only:
            raise OffsiteError("this offsite store was opened read-only", "config")
        if not backup.data_path.is_file():
            raise OffsiteError(f"backup {backup.id}: data file is missing", "io")
        started = time.monotonic()
        with self._locked():
            self._ensure_cache()
            tip = self._fetch_into_cache()
            chain = self._read_chain(self.cache_dir, tip) if tip else []
            for entry in chain:
                if entry.id == backup.id:
                    log.info("offsite: backup %s is already on the branch", backup.id)
                    return entry
            try:
                new_entry = self._store_backup(backup)
                kept = chain[-(self.keep - 1) :] if self.keep > 1 else []
                kept = [entry for entry in kept if self._has_object(self.cache_dir, entry.tree)]
                new_tip, entries = self._build_chain([*kept, new_entry])
                self._push(new_tip, expected=tip)
                self._git.run(
                    ["update-ref", CACHE_REF, new_tip],
                    what="offsite cache",
                    git_dir=self.cache_dir,
                )
            finally:
                # what left the chain, or what a failed push left behind (age output differs
                # on every attempt, so failed attempts must not pile up)
                self._prune()
        pushed = entries[-1]
        log.info(
            "offsite: backup %s pushed to branch %s: %d part(s), %.2f MB stored, %d kept, %.1f s",
            pushed.id,
            self.branch,
            pushed.parts,
            pushed.stored_size / MIB,
            len(entries),
            time.monotonic() - started,
        )
        return pushed

    def list(self) -> list[OffsiteEntry]:
        """The backups on the branch, newest first ([] when the branch does not exist yet)."""
        with self._temporary_repo() as repo:
            tip = self._fetch_tip(repo, depth=1)
            if tip is None:
                return []
            chain = self._read_chain(repo, tip)
        return sorted(chain, key=lambda entry: (entry.created_at, entry.id), reverse=True)

    def fetch(self, entry_id: str | None, dest: Path) -> Manifest:
        """Restore one backup (None: the newest) as a plain, verified database at ``dest``.

        ``dest`` is replaced atomically; on any failure it is untouched and nothing partial is
        left behind. Raises OffsiteError.
        """
        with self._temporary_repo() as repo:
            tip = self._fetch_tip(repo, depth=1)
            if tip is None:
                raise OffsiteError(
                    f"no offsite backups: branch {self.branch} does not exist", "not_found"
                )
            chain = self._read_chain(repo, tip)
            if not chain:
                raise OffsiteError(f"no offsite backups on branch {self.branch}", "not_found")
            if entry_id is None:
                entry = max(chain, key=lambda item: (item.created_at, item.id))
            else:
                found = [item for item in chain if item.id == entry_id]
                if not found:
                    known = ", ".join(item.id for item in reversed(chain))
                    raise OffsiteError(
                        f"no offsite backup {entry_id} on branch {self.branch} (there are: {known})",
                        "not_found",
                    )
                entry = found[0]
            if not self._has_object(repo, entry.commit):
                self._fetch_older(repo, entry, chain)
            return self._restore(repo, entry, dest)

    # -- the cache repository ----------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One offsite writer at a time (the watchdog and a CLI command), waiting at most the
        network timeout for the other one."""
        try:
            lock = FileLock(self.cache_dir.parent / "offsite.lock", timeout=self.timeout)
            lock.acquire()
        except LockBusy:
            raise OffsiteError("another offsite operation is in progress", "busy") from None
        try:
            yield
        finally:
            lock.release()

    def _ensure_cache(self) -> None:
        if (self.cache_dir / "HEAD").is_file():
            try:
                git.Repo(self.cache_dir).close()
                return
            except (git.exc.InvalidGitRepositoryError, git.exc.NoSuchPathError):
                log.warning(
                    "offsite: cache repository %s is damaged; recreating it", self.cache_dir
                )
                remove_tree(self.cache_dir)
        self.cache_dir.parent.mkdir(parents=True, exist_ok=True)
        try:
            repo = git.Repo.init(self.cache_dir, bare=True, mkdir=True)
        except (git.exc.GitError, OSError) as error:
            raise OffsiteError(
                f"cannot create the offsite cache repository: {error}", "io"
            ) from None
        try:
            with repo.config_writer() as config:
                # Encrypted parts do not compress and never delta: do not try.
                config.set_value("core", "compression", "0")
                config.set_value("core", "bigFileThreshold", "1m")
                config.set_value("gc", "auto", "0")
                # Fetched objects stay loose, so pruning alone drops backups that left the chain.
                config.set_value("fetch", "unpackLimit", "1000000000")
                config.set_value("transfer", "unpackLimit", "1000000000")
        finally:
            repo.close()

    def _fetch_into_cache(self) -> str | None:
        """Bring the branch (its last ``keep`` commits) into the cache; its tip, or None."""
        result = self._git.run(
            [
                "fetch",
                "--quiet",
                "--no-tags",
                "--no-write-fetch-head",
                f"--depth={self.keep}",
                self.url,
                f"+refs/heads/{self.branch}:{CACHE_REF}",
            ],
            what="reading the offsite branch",
            git_dir=self.cache_dir,
            network=True,
            check=False,
        )
        if result.returncode != 0:
            if "couldn't find remote ref" in result.stderr:
                self._git.run(
                    ["update-ref", "-d", CACHE_REF],
                    what="offsite cache",
                    git_dir=self.cache_dir,
                    check=False,
                )
                return None
            raise self._git.failure("reading the offsite branch", result)
        return self._rev_parse(self.cache_dir, CACHE_REF)

    def _store_backup(self, backup: Backup) -> OffsiteEntry:
        """Pack the backup into objects of the cache: its tree and the entry describing it."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix="push-", dir=self.work_dir))
        try:
            package, paths = pack(
                backup.data_path,
                compressed=backup.manifest.compression == "zstd",
                recipient=self._recipient,
                folder=staging,
                part_size=self.part_size,
            )
            lines = []
            for part, path in zip(package.parts, paths, strict=True):
                blob = self._hash_file(path)
                path.unlink()
                lines.append(f"100644 blob {blob}\t{part.name}")
            manifest_blob = self._hash_bytes(backup.manifest.to_json().encode())
            package_blob = self._hash_bytes(json.dumps(package.to_dict(), indent=2).encode())
            lines += [
                f"100644 blob {manifest_blob}\tmanifest.json",
                f"100644 blob {package_blob}\tpackage.json",
            ]
            tree = self._mktree(lines)
        finally:
            remove_tree(staging)
        manifest = backup.manifest
        return OffsiteEntry(
            id=manifest.id,
            tier=manifest.tier,
            created_at=manifest.created_at,
            size_bytes=manifest.size_bytes,
            sha256=manifest.sha256,
            parts=len(package.parts),
            stored_size=package.stored_size,
            encrypted=package.encrypted,
            commit="",
            tree=tree,
        )

    def _build_chain(self, entries: list[OffsiteEntry]) -> tuple[str, list[OffsiteEntry]]:
        """Commits oldest → newest, each tree holding its backup and the index so far."""
        parent: str | None = None
        built: list[OffsiteEntry] = []
        for entry in entries:
            index = {
                "kind": INDEX_KIND,
                "format": INDEX_FORMAT,
                "branch": self.branch,
                "entries": [
                    *(item.to_index(item.commit) for item in built),
                    entry.to_index(None),
                ],
            }
            index_blob = self._hash_bytes(json.dumps(index, indent=2).encode())
            tree = self._mktree(
                [f"100644 blob {index_blob}\t{INDEX}", f"040000 tree {entry.tree}\t{entry.id}"]
            )
            stamp = f"{int(entry.created_at)} +0000"
            args = ["commit-tree", tree, "-m", f"offsite backup {entry.id} ({entry.tier})"]
            if parent is not None:
                args += ["-p", parent]
            commit = self._git.run(
                args,
                what="offsite commit",
                git_dir=self.cache_dir,
                extra_env={"GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp},
            ).text
            built.append(dataclasses.replace(entry, commit=commit))
            parent = commit
        assert parent is not None
        return parent, built

    def _push(self, new_tip: str, expected: str | None) -> None:
        ref = f"refs/heads/{self.branch}"
        result = self._git.run(
            [
                "push",
                "--porcelain",
                f"--force-with-lease={ref}:{expected or ''}",
                self.url,
                f"{new_tip}:{ref}",
            ],
            what="pushing to the offsite branch",
            git_dir=self.cache_dir,
            network=True,
            check=False,
        )
        status = None
        for line in result.text.splitlines():
            fields = line.split("\t")
            if len(fields) >= 2 and fields[1].endswith(f":{ref}"):
                status = fields
        if status is not None and status[0] in ("+", "*", " ", "=") and result.returncode == 0:
            return
        if status is not None and status[0] == "!":
            summary = self._git.scrub(status[2] if len(status) > 2 else "rejected")
            remote = [
                line.strip()
                for line in self._git.scrub(result.stderr).splitlines()
                if line.strip().startswith("remote:")
            ]
            detail = f"; {' | '.join(remote[-3:])[-300:]}" if remote else ""
            raise OffsiteError(
                f"the git server rejected the push to branch {self.branch}: {summary}{detail}",
                "rejected",
            )
        raise self._git.failure(f"pushing to the offsite branch {self.branch}", result)

    def _prune(self) -> None:
        """Drop from the cache what left the chain (objects stay loose, see _ensure_cache)."""
        try:
            self._git.run(
                ["prune", "--expire=now"], what="pruning the offsite cache", git_dir=self.cache_dir
            )
        except OffsiteError as error:  # the push is done; a fat cache is not a failure
            log.warning("offsite: %s", error)

    # -- restoring ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _temporary_repo(self) -> Iterator[Path]:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix="fetch-", dir=self.work_dir))
        try:
            repo = folder / "repo.git"
            self._git.run(["init", "--quiet", "--bare", str(repo)], what="temporary repository")
            yield repo
        finally:
            remove_tree(folder)

    def _fetch_tip(self, repo: Path, depth: int) -> str | None:
        result = self._git.run(
            [
                "fetch",
                "--quiet",
                "--no-tags",
                "--no-write-fetch-head",
                f"--depth={depth}",
                self.url,
                f"+refs/heads/{self.branch}:{FETCH_REF}",
            ],
            what="fetching the offsite branch",
            git_dir=repo,
            network=True,
            check=False,
        )
        if result.returncode != 0:
            if "couldn't find remote ref" in result.stderr:
                return None
            raise self._git.failure("fetching the offsite branch", result)
        return self._rev_parse(repo, FETCH_REF)

    def _fetch_older(self, repo: Path, entry: OffsiteEntry, chain: list[OffsiteEntry]) -> None:
        """An older backup: its commit by hash (depth 1), or else deepen to reach it."""
        result = self._git.run(
            [
                "fetch",
                "--quiet",
                "--no-tags",
                "--no-write-fetch-head",
                "--depth=1",
                self.url,
                entry.commit,
            ],
            what="fetching an older offsite backup",
            git_dir=repo,
            network=True,
            check=False,
        )
        if result.returncode == 0 and self._has_object(repo, entry.commit):
            return
        position = len(chain) - [item.id for item in chain].index(entry.id)
        self._fetch_tip(repo, depth=position)
        if not self._has_object(repo, entry.commit):
            raise OffsiteError(
                f"offsite backup {entry.id} is no longer on branch {self.branch} "
                "(it changed while fetching); try again",
                "not_found",
            )

    def _restore(self, repo: Path, entry: OffsiteEntry, dest: Path) -> Manifest:
        with git.Repo(repo) as handle:
            try:
                folder = handle.commit(entry.commit).tree / entry.id
                manifest = Manifest.from_json(
                    (folder / "manifest.json").data_stream.read().decode()
                )
                package = Package.from_dict(
                    json.loads((folder / "package.json").data_stream.read())
                )
                blobs = [(folder / part.name).hexsha for part in package.parts]
            except (KeyError, ValueError, TypeError) as error:
                raise OffsiteError(
                    f"offsite backup {entry.id} is malformed on the branch ({type(error).__name__})",
                    "corrupt",
                ) from None
        if manifest.id != entry.id:
            raise OffsiteError(f"offsite backup {entry.id}: its manifest names another", "corrupt")
        dest.parent.mkdir(parents=True, exist_ok=True)
        scratch = repo.parent / "parts"
        scratch.mkdir()
        tmp = dest.parent / f".tmp-offsite-{secrets.token_hex(4)}-{dest.name}"
        try:
            paths = []
            for part, blob in zip(package.parts, blobs, strict=True):
                path = scratch / part.name
                self._git.run(
                    ["cat-file", "blob", blob],
                    what="reading a part",
                    git_dir=repo,
                    stdout_path=path,
                )
                paths.append(path)
            unpack(entry.id, package, paths, self._identity, tmp)
            remove_tree(scratch)
            if sha256_of(tmp) != manifest.sha256 or tmp.stat().st_size != manifest.size_bytes:
                raise OffsiteError(
                    f"offsite backup {entry.id}: the restored database does not match its sha256",
                    "corrupt",
                )
            problem = integrity_problem(tmp)
            if problem:
                raise OffsiteError(
                    f"offsite backup {entry.id}: the restored database fails integrity_check: "
                    f"{problem}",
                    "corrupt",
                )
            os.replace(tmp, dest)
            fsync_dir(dest.parent)
        except OSError as error:
            raise OffsiteError(
                f"offsite backup {entry.id}: writing {dest.name} failed: {error.strerror or error}",
                "io",
            ) from None
        finally:
            tmp.unlink(missing_ok=True)
        log.info("offsite: backup %s restored to %s", entry.id, dest)
        return manifest

    # -- git helpers -------------------------------------------------------------------------

    def _read_chain(self, repo: Path, tip: str) -> list[OffsiteEntry]:
        """The entries listed at ``tip``, oldest first. Refuses a branch that is not ours."""
        foreign = OffsiteError(
            f"branch {self.branch} of the backup repository holds something other than offsite "
            "backups; refusing to touch it (choose another BACKUP_GIT_BRANCH)",
            "foreign",
        )
        with git.Repo(repo) as handle:
            try:
                data = json.loads((handle.commit(tip).tree / INDEX).data_stream.read())
            except (KeyError, ValueError):
                raise foreign from None
        if not isinstance(data, dict) or data.get("kind") != INDEX_KIND:
            raise foreign
        try:
            return [OffsiteEntry.from_index(item, tip) for item in data["entries"]]
        except (KeyError, TypeError, ValueError):
            raise OffsiteError(
                f"the index on branch {self.branch} is malformed", "corrupt"
            ) from None

    def _rev_parse(self, repo: Path, ref: str) -> str:
        return self._git.run(["rev-parse", "--verify", ref], what="offsite ref", git_dir=repo).text

    def _has_object(self, repo: Path, sha: str) -> bool:
        if not sha:
            return False
        result = self._git.run(
            ["cat-file", "-e", sha], what="offsite object", git_dir=repo, check=False
        )
        return result.returncode == 0

    def _hash_file(self, path: Path) -> str:
        return self._git.run(
            ["hash-object", "-w", "--no-filters", str(path)],
            what="storing a part",
            git_dir=self.cache_dir,
        ).text

    def _hash_bytes(self, data: bytes) -> str:
        return self._git.run(
            ["hash-object", "-w", "--no-filters", "--stdin"],
            what="storing metadata",
            git_dir=self.cache_dir,
            input=data,
        ).text

    def _mktree(self, lines: list[str]) -> str:
        return self._git.run(
            ["mktree"],
            what="offsite tree",
            git_dir=self.cache_dir,
            input=("\n".join(lines) + "\n").encode(),
        ).text
