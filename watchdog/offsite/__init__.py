"""Offsite backups: verified backups, compressed, age-encrypted and split, on a git branch."""

from watchdog.offsite.cache import cache_dir_for
from watchdog.offsite.errors import OffsiteError
from watchdog.offsite.index import OffsiteEntry
from watchdog.offsite.store import OffsiteStore

__all__ = ["OffsiteEntry", "OffsiteError", "OffsiteStore", "cache_dir_for"]
