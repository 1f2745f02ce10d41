"""The one exception the offsite store raises: a clear message that never holds a secret."""

from __future__ import annotations

KINDS = (
    "config",  # bad or missing settings (no age key, credentials in the URL, bad key)
    "auth",  # the server refused the token
    "unreachable",  # connection refused, unknown host, TLS failure
    "timeout",  # a git call outran its time limit and was killed
    "not_found",  # no such repository, branch or backup
    "rejected",  # the server refused the push
    "foreign",  # the branch holds something that is not offsite backups
    "key",  # the age key does not open the backup
    "corrupt",  # a part, the package or the database does not verify
    "forged",  # the package's MAC does not verify: not made with this BACKUP_AGE_KEY
    "unauthenticated",  # an old package with no MAC (read only on an explicit opt-in)
    "space",  # not enough free disk for what an unpack would write
    "busy",  # another offsite operation holds the cache
    "git",  # any other git failure
    "io",  # local disk trouble
)


class OffsiteError(Exception):
    """An offsite operation failed. ``kind`` is one of ``KINDS`` (for health and alerting)."""

    def __init__(self, message: str, kind: str = "git") -> None:
        super().__init__(message)
        self.kind = kind if kind in KINDS else "git"
