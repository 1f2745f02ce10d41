"""Offsite backups: verified backups, compressed, age-encrypted and split, on a git branch."""

from watchdog.offsite.errors import OffsiteError
from watchdog.offsite.store import OffsiteEntry, OffsiteStore, cache_dir_for

__all__ = ["OffsiteEntry", "OffsiteError", "OffsiteStore", "cache_dir_for"]
