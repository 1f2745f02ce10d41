"""The offsite store: verified backups on a dedicated branch of a git repository.

A facade over the modules that do the work: ``index`` (the branch's format), ``cache`` (the bare
cache repository in DATA_DIR/offsite and its lock), ``push`` (writing the branch), ``fetch``
(reading it back), ``verify`` (a package's MAC, bounds and manifest), ``auth`` (the MAC key),
``package`` (zstd → age → parts) and ``git`` (the one way git is run).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from watchdog.data.catalogue import Backup, Manifest
from watchdog.offsite.cache import cache_dir_for
from watchdog.offsite.errors import OffsiteError
from watchdog.offsite.fetch import Candidates, fetch_entry, scan_branch
from watchdog.offsite.git import BareRepo, GitRunner, Remote, check_branch, check_url
from watchdog.offsite.index import OffsiteEntry, RefusedPackage
from watchdog.offsite.journal_fetch import JournalFetch, fetch_journal
from watchdog.offsite.journal_push import CURSOR_NAME, JournalPushed, push_journal
from watchdog.offsite.package import PART_SIZE, check_part_size, parse_identity
from watchdog.offsite.push import push_backup
from watchdog.offsite.verify import Keys

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
        allow_unauthenticated: bool = False,
    ) -> None:
        """``read_only`` stores only list and fetch. A store for pushing refuses to exist
        without an age key: no key, no MAC key, and a package nobody can authenticate is one
        anybody with push access can replace (``allow_plaintext`` no longer changes that).
        ``allow_unauthenticated`` (an operator's explicit opt-in, never a default) also lists
        and fetches packages of the format before MACs."""
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
        self._keys = Keys.of(self._identity, allow_unauthenticated)
        self.last_refused: tuple[RefusedPackage, ...] = ()
        """Packages the last push found on the branch and left untouched (not this key's)."""
        if self._identity is None and not read_only:
            plaintext = (
                " (BACKUP_GIT_ALLOW_PLAINTEXT no longer allows pushing without one: backups "
                "must be authenticated, and the MAC key comes from the age key)"
                if allow_plaintext
                else ""
            )
            raise OffsiteError(
                "offsite backups need BACKUP_AGE_KEY (an age identity, AGE-SECRET-KEY-1…) to "
                f"encrypt and authenticate what leaves the machine{plaintext}",
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
    def from_settings(
        cls, settings: Any, *, read_only: bool = False, allow_unauthenticated: bool = False
    ) -> OffsiteStore | None:
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
            allow_unauthenticated=allow_unauthenticated,
        )

    @property
    def recipient(self) -> str | None:
        """The age public key backups are encrypted to (safe to show)."""
        return str(self._recipient) if self._recipient is not None else None

    def push(self, backup: Backup, *, rotate: bool = True) -> OffsiteEntry:
        """Put one verified backup on the branch (idempotent). Raises OffsiteError.

        Keeps the newest ``keep`` packages this key made; with ``rotate=False`` (after a fresh
        start, until an operator releases it) it keeps all of them. Packages it cannot
        authenticate are never removed; they are in ``last_refused`` afterwards."""
        if self.read_only:
            raise OffsiteError("this offsite store was opened read-only", "config")
        if not backup.data_path.is_file():
            raise OffsiteError(f"backup {backup.id}: data file is missing", "io")
        assert self._recipient is not None
        pushed = push_backup(
            self._remote,
            self._cache,
            backup,
            keep=self.keep,
            rotate=rotate,
            keys=self._keys,
            recipient=self._recipient,
            part_size=self.part_size,
            work_dir=self.work_dir,
        )
        self.last_refused = pushed.refused
        return pushed.entry

    def candidates(self, now: float | None = None) -> Candidates:
        """Every package on the branch, for a caller that tries them one by one:
        ``entries`` authenticated (MAC, bounds, decrypted manifest), newest first by the
        manifest's ``created_at``, those dated more than ``CLOCK_SKEW`` past ``now`` (default:
        the clock) last; ``refused`` the others, each with its id, kind and reason. Empty when
        the branch does not exist. Raises OffsiteError (no key, network, a foreign branch)."""
        return scan_branch(self._remote, self.work_dir, self._keys, now)

    def list(self) -> list[OffsiteEntry]:
        """The authenticated backups on the branch, newest first (``candidates().entries``)."""
        return list(self.candidates().entries)

    def fetch(self, entry_id: str | None, dest: Path) -> Manifest:
        """Restore one backup (None: the newest not dated in the future) as a plain database.

        What a returned ``dest`` has been proven to be, in this order: its ``package.json``
        carries a valid HMAC-SHA256 under the key derived from BACKUP_AGE_KEY (so it was made
        by the holder of that secret), checked before anything is decrypted or unpacked; the
        package's bounds hold (part names of our pattern, part count, every part's size as the
        tree lists it, checked before a byte is read); the encrypted manifest is the one the
        MAC covers and decrypts; every part has the size and sha256 the package gives; there
        was free room for ``manifest.size_bytes`` and decompression stopped there; the plain
        database is exactly ``manifest.size_bytes`` bytes with sha256 ``manifest.sha256``; and
        ``PRAGMA integrity_check`` on it says ok. ``dest`` is that very file, renamed into
        place and its folder fsynced, so the caller need not hash or check it again.

        Not proven: that it is the newest the operator made (someone with push access can
        remove or roll back packages, though not forge one), nor anything about its schema
        (compare it with the app's before installing). It is left as it was backed up, in
        rollback-journal mode. With ``allow_unauthenticated`` an old package without a MAC
        proves only the sha256 and integrity steps.

        ``dest`` is replaced atomically; on any failure it is untouched and nothing partial
        is left behind. Raises OffsiteError (kind ``forged``, ``unauthenticated``, ``corrupt``,
        ``space``, ``not_found`` …).
        """
        return fetch_entry(self._remote, self.work_dir, entry_id, self._keys, dest)

    # -- the update journal (packages of kind journal on the same branch) ------------------

    @property
    def journal_cursor(self) -> Path:
        """What of the journal went offsite already (beside the cache; losing it only means
        pushing everything once more)."""
        return self.cache_dir.parent / CURSOR_NAME

    def push_journal(self, folder: Path, now: float) -> JournalPushed | None:
        """The journal lines added since the last push (complete lines only, the newest
        segment's included) as one authenticated package on the branch; None when nothing
        changed. Raises OffsiteError."""
        if self.read_only:
            raise OffsiteError("this offsite store was opened read-only", "config")
        assert self._recipient is not None
        return push_journal(
            self._remote,
            self._cache,
            folder,
            self.journal_cursor,
            keys=self._keys,
            recipient=self._recipient,
            part_size=self.part_size,
            work_dir=self.work_dir,
            now=now,
        )

    def fetch_journal(self, since: float) -> JournalFetch:
        """Every authenticated journal package holding updates a backup begun at ``since``
        may lack (and the newest, for its erasure records), unpacked and checked against
        its manifest, oldest first; refused ones named. Raises OffsiteError."""
        return fetch_journal(self._remote, self.work_dir, self._keys, since)
