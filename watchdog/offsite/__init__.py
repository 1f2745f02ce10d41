"""Offsite backups: verified backups, compressed, age-encrypted and split, on a git branch."""

from watchdog.offsite.cache import cache_dir_for
from watchdog.offsite.errors import OffsiteError
from watchdog.offsite.fetch import Candidates
from watchdog.offsite.index import OffsiteEntry, RefusedPackage
from watchdog.offsite.store import OffsiteStore
from watchdog.offsite.verify import CLOCK_SKEW

__all__ = [
    "CLOCK_SKEW",
    "Candidates",
    "OffsiteEntry",
    "OffsiteError",
    "OffsiteStore",
    "RefusedPackage",
    "cache_dir_for",
]
