"""The snapshot is made by a worker process (``watchdog.data.maker``) at low priority, the caller
only waiting: real SQLite files, real processes, real signals."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from conf.layout import DataLayout
from tests import dbgen
from tests.helpers import base_env, free_port, wait_until
from watchdog.data.catalogue import Catalogue
from watchdog.data.integrity import CHECK_NICE
from watchdog.data.maker import make_snapshot
from watchdog.data.snapshot import SnapshotError, SnapshotRequest

TIMEOUT = 120.0


@pytest.fixture
def layout(tmp_path: Path) -> DataLayout:
    layout = DataLayout(tmp_path / "data", tmp_path / "data" / "erixcast.db")
    layout.ensure()
    dbgen.create(layout.database, 40_000_000)
    return layout


def _makers(parent: int) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info["cmdline"] or []
        if "watchdog.data.maker" in cmdline and cmdline[-1] == str(parent):
            found.append(process)
    return found


def _group(maker: psutil.Process) -> list[psutil.Process]:
    try:
        return [maker, *maker.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _gone(processes: list[psutil.Process]) -> bool:
    for process in processes:
        try:
            if process.status() != psutil.STATUS_ZOMBIE:
                return False
        except psutil.NoSuchProcess:
            continue
    return True


class _Taking(threading.Thread):
    """make_snapshot in a thread of this process, as the watchdog runs it."""

    def __init__(self, layout: DataLayout, tier: str = "manual") -> None:
        super().__init__(daemon=True)
        self.layout, self.stop = layout, threading.Event()
        self.request = SnapshotRequest(
            tier, "test", time.time(), "t", lambda: not self.stop.is_set()
        )
        self.error: BaseException | None = None
        self.result: object = None
        self.thread_cpu = 0.0

    def run(self) -> None:
        # User time only: reaping the worker costs this thread kernel time, the kernel dropping
        # the worker's /proc entries (release_task → d_invalidate: up to 0.65 s of system time
        # measured on a loaded machine, with no work of ours in it). Copying, hashing or checking
        # here would show as user time.
        began = resource.getrusage(resource.RUSAGE_THREAD).ru_utime
        try:
            self.result = make_snapshot(self.layout.database, Catalogue(self.layout), self.request)
        except BaseException as error:
            self.error = error
        self.thread_cpu = resource.getrusage(resource.RUSAGE_THREAD).ru_utime - began

    def worker_started(self) -> list[psutil.Process]:
        """The maker (its check runs in threads of its own), once the copy has begun."""

        def started() -> list[psutil.Process] | None:
            makers = _makers(os.getpid())
            temporaries = list(self.layout.tier(self.request.tier).glob(".tmp-*"))
            if makers and temporaries:
                return _group(makers[0])
            return None

        return wait_until(started, timeout=TIMEOUT, interval=0.005, what="the snapshot worker")


def test_the_caller_only_waits_while_a_low_priority_worker_makes_the_snapshot(layout):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    taking = _Taking(layout)
    taking.start()
    workers = taking.worker_started()
    nices, idle = [], []
    for process in workers:
        try:
            nices.append(process.nice())
            idle.extend(
                os.sched_getscheduler(thread.id) == os.SCHED_IDLE for thread in process.threads()
            )
        except (psutil.NoSuchProcess, ProcessLookupError):
            continue
    taking.join(TIMEOUT)
    assert not taking.is_alive() and taking.error is None, taking.error
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    children_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    assert nices and min(nices) >= CHECK_NICE, nices
    assert idle and all(idle), "every thread of the worker in the idle scheduling class"
    assert children_cpu > 0.2, "the worker did the copy, the hash and the check"
    assert taking.thread_cpu < 0.1 * children_cpu, (taking.thread_cpu, children_cpu)
    manifest, data = taking.result  # type: ignore[misc]
    assert data.exists() and manifest.rows["messages"] > 0
    assert len(workers) == 1, "one process: the check's shares are threads of the maker"
    wait_until(lambda: _gone(workers), timeout=30, what="the worker and its check workers' end")


@pytest.mark.parametrize("tier", ["manual", "weekly"])
def test_abandoning_kills_the_worker_and_its_check_workers_and_leaves_nothing(layout, tier):
    taking = _Taking(layout, tier)
    taking.start()
    workers = taking.worker_started()
    stopped = time.monotonic()
    taking.stop.set()
    taking.join(TIMEOUT)
    assert not taking.is_alive()
    assert isinstance(taking.error, SnapshotError) and "abandoned" in str(taking.error)
    assert time.monotonic() - stopped < 10, "abandoned at once, not at the end of the work"
    assert len(workers) >= 1
    # SIGKILL is delivered at once but a process ends (and is reaped) a moment later
    wait_until(lambda: _gone(workers), timeout=30, what="the worker and its check workers' end")
    assert not list(layout.tier(tier).iterdir()), "its temporaries are removed"


def test_a_worker_killed_from_outside_is_a_failed_snapshot_not_a_hang(layout):
    taking = _Taking(layout)
    taking.start()
    workers = taking.worker_started()
    workers[0].send_signal(signal.SIGKILL)
    taking.join(TIMEOUT)
    assert not taking.is_alive()
    assert isinstance(taking.error, SnapshotError), taking.error
    assert "without an answer" in str(taking.error)
    assert wait_until(lambda: _gone(workers), timeout=30, what="the check workers' end")
    assert not list(layout.tier("manual").iterdir())


PARENT = """
import sys, time
from pathlib import Path
from conf.layout import DataLayout
from watchdog.data.backups import BackupKeeper
root = Path(sys.argv[1])
keeper = BackupKeeper(DataLayout(root, root / "erixcast.db"), {"weekly": 3}, 0, "t")
keeper.take("weekly", "test", time.time())
"""


def test_the_worker_dies_with_the_process_that_started_it(layout, tmp_path):
    """A watchdog killed mid-backup (SIGKILL: no clean-up of its own) takes its worker along."""
    env = base_env(layout.root, free_port())
    command = subprocess.Popen(
        [sys.executable, "-c", PARENT, str(layout.root)],
        env=env,
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        makers = wait_until(
            lambda: _makers(command.pid), timeout=TIMEOUT, interval=0.005, what="the worker"
        )
        workers = _group(makers[0])
        command.send_signal(signal.SIGKILL)
        command.wait(30)
    finally:
        if command.poll() is None:
            command.kill()
            command.wait(30)
    wait_until(lambda: _gone(workers), timeout=30, what="the worker's death with its parent")


def test_a_command_with_no_stack_running_makes_the_snapshot_itself(layout, tmp_path):
    """No event loop to keep answering: ``python -m watchdog backup`` starts no worker (its
    start would only add to the backup's time), and the backup is proven all the same."""
    env = base_env(layout.root, free_port())
    env["DATABASE_PATH"] = str(layout.database)
    command = subprocess.Popen(
        [sys.executable, "-m", "watchdog", "backup"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen: list[psutil.Process] = []
    deadline = time.monotonic() + TIMEOUT
    try:
        while command.poll() is None and time.monotonic() < deadline:
            seen += _makers(command.pid)
            try:
                command.wait(0.005)
            except subprocess.TimeoutExpired:
                pass
        out, err = command.communicate(timeout=TIMEOUT)
    finally:
        if command.poll() is None:
            command.kill()
            command.wait(30)
    assert command.returncode == 0, err
    assert not seen, "the command started a snapshot worker"
    (backup,) = Catalogue(layout).scan()
    assert backup.manifest.checked_sha256 == backup.manifest.sha256
    assert "verified" in out
