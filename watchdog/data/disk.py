"""Where DATA_DIR lives on disk: how full, and whether it survives a redeploy."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import psutil


@dataclass(frozen=True)
class DiskReading:
    path: str
    percent: float
    free_bytes: int
    total_bytes: int
    mount_point: str
    persistent: bool


def mount_point(path: Path) -> Path:
    """The mount point holding ``path`` (its nearest existing ancestor if it does not exist yet)."""
    current = path.resolve()
    while not current.exists():
        current = current.parent
    while not os.path.ismount(current):
        current = current.parent
    return current


def is_persistent(path: Path) -> bool:
    """True when ``path`` sits on a filesystem mounted below the root one.

    On Render the root filesystem is the container's: rebuilt at every deploy. Only an attached
    disk (mounted at its ``mountPath``) survives, so a DATA_DIR whose mount point is ``/`` would
    lose the database at the next deploy.
    """
    return mount_point(path) != Path("/")


def read_disk(path: Path) -> DiskReading:
    usage = psutil.disk_usage(str(mount_point(path)))
    mount = mount_point(path)
    return DiskReading(
        path=str(path),
        percent=float(usage.percent),
        free_bytes=int(usage.free),
        total_bytes=int(usage.total),
        mount_point=str(mount),
        persistent=mount != Path("/"),
    )
