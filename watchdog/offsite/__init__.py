"""Offsite backups: verified backups, compressed, age-encrypted and split, on a git branch.

Nothing here is imported until it is used (``__getattr__``): an instance without
``BACKUP_GIT_URL`` never loads the packaging, the encryption or git's plumbing — a few MB of
the watchdog's memory (:func:`store_from_settings` asks the setting first)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from watchdog.offsite.errors import OffsiteError

if TYPE_CHECKING:
    from watchdog.offsite.cache import cache_dir_for
    from watchdog.offsite.fetch import Candidates
    from watchdog.offsite.index import OffsiteEntry, RefusedPackage
    from watchdog.offsite.store import OffsiteStore
    from watchdog.offsite.verify import CLOCK_SKEW

_WHERE = {
    "CLOCK_SKEW": "verify",
    "Candidates": "fetch",
    "OffsiteEntry": "index",
    "OffsiteStore": "store",
    "RefusedPackage": "index",
    "cache_dir_for": "cache",
}

__all__ = [
    "CLOCK_SKEW",
    "Candidates",
    "OffsiteEntry",
    "OffsiteError",
    "OffsiteStore",
    "RefusedPackage",
    "cache_dir_for",
    "store_from_settings",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


def store_from_settings(settings: Any, **options: Any) -> OffsiteStore | None:
    """``OffsiteStore.from_settings``, loading the store only when offsite is on (no
    ``BACKUP_GIT_URL``: None). Raises OffsiteError for a bad setting."""
    if not settings.backup_git_url:
        return None
    from watchdog.offsite.store import OffsiteStore

    return OffsiteStore.from_settings(settings, **options)
