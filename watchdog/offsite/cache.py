"""What offsite keeps on the local disk, all in ``DATA_DIR/offsite``: the bare cache repository
the branch is written from (never the code checkout), the lock that keeps one writer at a time,
and scratch folders that never outlive the operation that made them.

The cache is disposable: a damaged one is recreated, and a restore never reads it.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from watchdog.data.fs import FileLock, LockBusy
from watchdog.offsite.errors import OffsiteError
from watchdog.offsite.git import BareRepo

log = logging.getLogger(__name__)

CACHE_REF = "refs/offsite/remote"
"""Where the cache keeps the branch's tip as last fetched or pushed."""
LOCK_NAME = "offsite.lock"
CACHE_CONFIG = (
    # Encrypted parts do not compress and never delta: do not try.
    ("core.compression", "0"),
    ("core.bigFileThreshold", "1m"),
    ("gc.auto", "0"),
    # Fetched objects stay loose, so pruning alone drops backups that left the chain.
    ("fetch.unpackLimit", "1000000000"),
    ("transfer.unpackLimit", "1000000000"),
)


def cache_dir_for(data_root: Path) -> Path:
    """Where the cache repository lives: ``DATA_DIR/offsite/cache.git``."""
    return data_root / "offsite" / "cache.git"


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def scratch(parent: Path, prefix: str) -> Iterator[Path]:
    """A fresh folder in ``parent``, removed with all it holds on the way out."""
    parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    try:
        yield folder
    finally:
        remove_tree(folder)


@contextlib.contextmanager
def locked(cache: BareRepo, timeout: float) -> Iterator[None]:
    """One offsite writer at a time (the watchdog and a CLI command), waiting at most
    ``timeout`` (the network timeout) for the other one."""
    try:
        lock = FileLock(cache.path.parent / LOCK_NAME, timeout=timeout)
        lock.acquire()
    except LockBusy:
        raise OffsiteError("another offsite operation is in progress", "busy") from None
    try:
        yield
    finally:
        lock.release()


def ensure_cache(cache: BareRepo) -> None:
    """The cache repository exists and git accepts it; a damaged one is made afresh."""
    if (cache.path / "HEAD").is_file():
        if cache.is_valid():
            return
        log.warning("offsite: cache repository %s is damaged; recreating it", cache.path)
        remove_tree(cache.path)
    cache.path.parent.mkdir(parents=True, exist_ok=True)
    try:
        cache.git.run(["init", "--quiet", "--bare", str(cache.path)], what="offsite cache")
        for key, value in CACHE_CONFIG:
            cache.run(["config", key, value], what="offsite cache")
    except OffsiteError as error:
        raise OffsiteError(f"cannot create the offsite cache repository: {error}", "io") from None


def prune(cache: BareRepo) -> None:
    """Drop from the cache what left the chain (objects stay loose, see ``CACHE_CONFIG``)."""
    try:
        cache.run(["prune", "--expire=now"], what="pruning the offsite cache")
    except OffsiteError as error:  # the push is done; a fat cache is not a failure
        log.warning("offsite: %s", error)
