"""Leftovers of an earlier run that would block or double this one: a bot still polling after
its watchdog died, and a watchdog orphaned by its supervisor's death still holding DATA_DIR.

Both are found by what they are (their command line), never by a pid alone: a recycled pid that
belongs to something else is left alone. And the watchdog itself follows its supervisor:
:func:`follow_parent` asks the kernel for SIGTERM when the parent dies.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
import sys
from pathlib import Path

import psutil

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1


def follow_parent() -> int:
    """SIGTERM (a graceful stop) when our parent — supervisord — dies: a kill -9 of it must not
    leave the watchdog and its bot running re-parented to PID 1. Returns the parent's pid, for a
    periodic check where the kernel's signal is not available."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, ctypes.c_ulong(signal.SIGTERM), 0, 0, 0)
        except (OSError, AttributeError):
            log.warning("cannot ask to be stopped with the parent: watching its pid instead")
    return os.getppid()


def is_orphaned(process: psutil.Process) -> bool:
    """Re-parented to init: whoever started it (supervisord, a shell) is gone."""
    try:
        return process.ppid() in (0, 1)
    except psutil.Error:
        return False


def _is_watchdog_run(cmdline: list[str]) -> bool:
    return "watchdog" in cmdline and "run" in cmdline and "-m" in cmdline


def reap_orphaned_watchdog(holder: str, grace: float) -> int | None:
    """Stop the watchdog that holds the lock when it is an orphan (its supervisor died before it
    could stop it); returns its pid once it is gone, else None (a live, supervised watchdog, or
    something that is not a watchdog, is never touched). Blocking."""
    try:
        pid = int(holder)
        process = psutil.Process(pid)
        cmdline = process.cmdline()
    except (ValueError, psutil.Error):
        return None
    if pid == os.getpid() or not _is_watchdog_run(cmdline) or not is_orphaned(process):
        return None
    log.warning("an orphaned watchdog (pid %s) holds DATA_DIR: stopping it", pid)
    process.terminate()
    try:
        process.wait(grace)
    except psutil.TimeoutExpired:
        log.warning("orphaned watchdog (pid %s) still running after %.0f s: killing it", pid, grace)
        process.kill()
        try:
            process.wait(10)
        except psutil.TimeoutExpired:
            return None
    return pid


def reap_leftover_bot(pid_file: Path, grace: float) -> int | None:
    """Stop a bot left behind by a previous watchdog, so two bots never poll at once.

    Blocking; returns the pid that was stopped. Only a process whose command line is ours
    (``-m bot``) is touched: a recycled pid belonging to something else is left alone.
    """
    try:
        pid = int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        process = psutil.Process(pid)
        cmdline = process.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        pid_file.unlink(missing_ok=True)
        return None
    if "bot" not in cmdline or "-m" not in cmdline or pid == os.getpid():
        pid_file.unlink(missing_ok=True)
        return None
    log.warning("a bot from a previous watchdog is still running (pid %s): stopping it", pid)
    process.terminate()
    try:
        process.wait(grace)
    except psutil.TimeoutExpired:
        process.kill()
        process.wait(10)
    pid_file.unlink(missing_ok=True)
    return pid
