"""What is watched all along, in a thread of its own: the stack's processes (two bots at once is
a fault of its own), the watchdog's RSS, every backup manifest that appears (with its date: the
accounting needs the newest good backup before each fault), what went offsite, and the admin
API's per-run secrets (so the secret scan can look for them)."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from tests.chaos.stack import ChaosStack

SAMPLE_EVERY = 0.25
FILES_EVERY = 1.0


@dataclass
class BackupSeen:
    id: str
    tier: str
    created_at: float
    file: str
    manifest: str
    first_seen: float
    gone_at: float | None = None
    """When its manifest was first seen missing (pruned, or the disk lost)."""


@dataclass
class Monitor:
    stack: ChaosStack
    rss: list[tuple[float, int, int]] = field(default_factory=list)
    """(monotonic, watchdog pid, RSS bytes)"""
    overlaps: list[tuple[float, list[int]]] = field(default_factory=list)
    """(monotonic, pids) whenever more than one bot of the stack was alive at once"""
    max_bots: int = 0
    backups: dict[str, BackupSeen] = field(default_factory=dict)
    offsite: dict[str, float] = field(default_factory=dict)
    """offsite backup id → its created_at, as the watchdog recorded each push"""
    admin_secrets: set[str] = field(default_factory=set)
    watchdog_pids: set[int] = field(default_factory=set)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="chaos-monitor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        self.read_files()

    def _run(self) -> None:
        files_at = 0.0
        while not self._stop.is_set():
            try:
                self.sample_processes()
                if time.monotonic() - files_at >= FILES_EVERY:
                    files_at = time.monotonic()
                    self.read_files()
            except Exception as error:  # a sample lost is not a campaign lost
                print(f"chaos monitor: {error!r}", flush=True)
            self._stop.wait(SAMPLE_EVERY)  # sampling period

    # ------------------------------------------------------------------------ processes
    def sample_processes(self) -> None:
        now = time.monotonic()
        found = self.stack.processes()
        bots, watchdogs = self.stack.by_role("bot", found), self.stack.by_role("watchdog", found)
        with self._lock:
            self.max_bots = max(self.max_bots, len(bots))
            if len(bots) > 1:
                self.overlaps.append((now, sorted(p.pid for p in bots)))
            for process in watchdogs:
                with contextlib.suppress(psutil.Error):
                    self.rss.append((now, process.pid, process.memory_info().rss))
                    self.watchdog_pids.add(process.pid)

    # ---------------------------------------------------------------------------- files
    def read_files(self) -> None:
        data = self.stack.data
        backups = data / "backups"
        with self._lock:
            known = [b for b in self.backups.values() if b.gone_at is None]
        for backup in known:
            if not Path(backup.manifest).exists():
                backup.gone_at = time.time()
        if backups.is_dir():
            for manifest in backups.glob("*/*.json"):
                if manifest.stem in self.backups:
                    continue
                with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                    doc = json.loads(manifest.read_text())
                    seen = BackupSeen(
                        str(doc["id"]),
                        str(doc["tier"]),
                        float(doc["created_at"]),
                        str(manifest.with_name(doc["file"])),
                        str(manifest),
                        time.time(),
                    )
                    with self._lock:
                        self.backups[seen.id] = seen
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError, AttributeError):
            state = json.loads((data / "watchdog-state.json").read_text())
            offsite = state.get("offsite") or {}
            if offsite.get("id"):
                with self._lock:
                    self.offsite.setdefault(str(offsite["id"]), float(offsite["created_at"]))
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            secret = json.loads((data / "run" / "admin.json").read_text())["secret"]
            if secret:
                with self._lock:
                    self.admin_secrets.add(str(secret))

    # ---------------------------------------------------------------------------- reads
    def backups_before(self, at: float) -> list[BackupSeen]:
        """Backups created before ``at`` (wall clock) and still there then, oldest first."""
        with self._lock:
            found = [
                b
                for b in self.backups.values()
                if b.created_at < at and (b.gone_at is None or b.gone_at > at)
            ]
        return sorted(found, key=lambda b: b.created_at)

    def offsite_before(self, at: float) -> list[tuple[str, float]]:
        with self._lock:
            return sorted(
                ((i, c) for i, c in self.offsite.items() if c < at), key=lambda item: item[1]
            )

    def local_backup_files(self) -> list[BackupSeen]:
        with self._lock:
            found = [b for b in self.backups.values() if Path(b.file).exists()]
        return sorted(found, key=lambda b: b.created_at)
