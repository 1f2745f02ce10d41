"""The offsite store: verified backups on a dedicated branch of a git repository.

A facade over the modules that do the work: ``index`` (the branch's format), ``cache`` (the bare
cache repository in DATA_DIR/offsite and its lock), ``push`` (writing the branch), ``fetch``
(reading it back), ``package`` (zstd → age → parts) and ``git`` (the one way git is run).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from watchdog.data.catalogue import Backup, Manifest
from watchdog.offsite.cache import cache_dir_for
from watchdog.offsite.errors import OffsiteError
from watchdog.offsite.fetch import fetch_entry, list_entries
from watchdog.offsite.git import BareRepo, GitRunner, Remote, check_branch, check_url
from watchdog.offsite.index import OffsiteEntry
from watchdog.offsite.package import PART_SIZE, check_part_size, parse_identity
from watchdog.offsite.push import push_backup

LOCAL_TIMEOUT_MIN = 600.0
"""Local git calls (hashing big parts, pruning) are bounded too, but not by the network timeout."""


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
        check_branch(branch)
        self._remote = Remote(self._git, branch)
        self._cache = BareRepo(self._git, cache_dir)

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

    def push(self, backup: Backup) -> OffsiteEntry:
        """Put one verified backup on the branch (idempotent). Raises OffsiteError."""
        if self.read_only:
            raise OffsiteError("this offsite store was opened read-only", "config")
        if not backup.data_path.is_file():
            raise OffsiteError(f"backup {backup.id}: data file is missing", "io")
        return push_backup(
            self._remote,
            self._cache,
            backup,
            keep=self.keep,
            recipient=self._recipient,
            part_size=self.part_size,
            work_dir=self.work_dir,
        )

    def list(self) -> list[OffsiteEntry]:
        """The backups on the branch, newest first ([] when the branch does not exist yet)."""
        return list_entries(self._remote, self.work_dir)

    def fetch(self, entry_id: str | None, dest: Path) -> Manifest:
        """Restore one backup (None: the newest) as a plain database at ``dest``.

        What a returned ``dest`` has been proven to be, in this order: every part of the size and
        sha256 its ``package.json`` gives; the parts decrypt with the age key (age authenticates
        every chunk) and decompress (zstd frame checksum); the plain database is exactly
        ``manifest.size_bytes`` bytes with sha256 ``manifest.sha256``; and ``PRAGMA
        integrity_check`` on it says ok. ``dest`` is that very file, renamed into place and its
        folder fsynced, so the caller need not hash or check it again. Not proven: that the
        operator wrote it (the manifest travels on the branch unauthenticated, and age encrypts to
        a public key anyone may hold), nor anything about its schema. It is left as it was
        backed up, in rollback-journal mode.

        ``dest`` is replaced atomically; on any failure it is untouched and nothing partial is
        left behind. Raises OffsiteError.
        """
        return fetch_entry(self._remote, self.work_dir, entry_id, self._identity, dest)
