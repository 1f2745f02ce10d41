"""``python -m watchdog run``: the long-running watchdog (what supervisord starts)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from conf.exitcodes import EXIT_BAD_SETTINGS, EXIT_REFUSED
from conf.layout import DataLayout
from conf.logging import setup_logging
from conf.settings import Settings, SettingsError, load_settings
from watchdog.data.disk import is_persistent, mount_point
from watchdog.data.fs import AlreadyRunning, InstanceLock, restrict_tree
from watchdog.fatal_listener import GIVE_UP
from watchdog.rules.server import database_url_of

if TYPE_CHECKING:
    from watchdog.runtime.service import WatchdogService

log = logging.getLogger("watchdog")
T = TypeVar("T")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run the watchdog in the foreground: check the data, run the bot, serve /health",
        description=(
            "Check DATA_DIR and the database, launch the bot as a child process, restart it when it "
            "exits or stops polling, and serve /health, /stats and /metrics on HOST:PORT. "
            "SIGTERM or SIGINT stops the bot gracefully and exits 0."
        ),
    )
    parser.set_defaults(handler=command)


def command(args: argparse.Namespace) -> int:
    # The runtime is imported here, not above: the other commands share this module's parser
    # and must stay small (watchdog.cli.remote).
    from watchdog.offsite import OffsiteError, store_from_settings
    from watchdog.runtime.orphans import follow_parent
    from watchdog.runtime.service import WatchdogService
    from watchdog.web.front import WebFront
    from watchdog.web.public import CannotServe

    parent = follow_parent()  # first: a kill -9 of supervisord must end us too
    try:
        settings = load_settings()
    except SettingsError as error:
        return give_up(EXIT_BAD_SETTINGS, f"bad setting: {error}")
    layout = DataLayout.from_settings(settings)
    problem = place_problem(settings, layout)
    if problem is not None:
        return give_up(*problem)
    try:
        store_from_settings(settings)  # like every other setting: bad means no start
    except OffsiteError as error:
        return give_up(EXIT_BAD_SETTINGS, f"bad setting: {error}")
    try:
        layout.ensure()
    except OSError as error:
        return give_up(EXIT_REFUSED, f"DATA_DIR: cannot prepare {layout.root}: {error.strerror}")
    setup_logging(
        "watchdog", settings.log_level, settings.secrets(), layout.logs, settings.log_format
    )
    lock = InstanceLock(layout.lock_file)
    try:
        take_lock(lock, settings.shutdown_budget + settings.bot_stop_timeout)
    except AlreadyRunning as error:
        log.error("refusing to start: %s", error)
        return give_up(EXIT_REFUSED, f"refusing to start: {error}")
    try:
        changed = restrict_tree(layout.root)
        if changed:
            log.warning("made %d files and folders under DATA_DIR owner-only", changed)
        front = WebFront(settings.host, settings.port)
        service = WatchdogService(settings, layout, front=front, parent_pid=parent)
        return run_bounded(service)
    except CannotServe as error:
        log.error("%s", error)
        return EXIT_REFUSED
    finally:
        lock.release()


def give_up(code: int, message: str) -> int:
    """One line, the give-up line, then the exit code. Under supervisord, whose retries cannot
    mend a setting or a refused place, the fatal_guard listener reads the give-up line and ends
    supervisord with a failure at once; waiting for FATAL would depend on each failed start
    being quicker than ``startsecs``, which a loaded machine does not promise."""
    print(f"watchdog: {message}", file=sys.stderr, flush=True)
    if os.environ.get("SUPERVISOR_PROCESS_NAME") == "watchdog":
        print(GIVE_UP, file=sys.stderr, flush=True)
    return code


def place_problem(settings: Settings, layout: DataLayout) -> tuple[int, str] | None:
    """DATA_DIR and DATABASE_PATH fit to run on, or (exit code, one line)."""
    if database_url_of(settings) is not None:
        return layout.place_problem()  # the data is on the server: DATA_DIR may be ephemeral
    if settings.render and not is_persistent(settings.data_dir):
        return EXIT_REFUSED, (
            f"refusing to start: RENDER is set but DATA_DIR ({settings.data_dir}) is on the "
            f"container's own filesystem (mount point {mount_point(settings.data_dir)}), which is "
            "wiped at every deploy: the database would be lost. Attach a Render disk and point "
            "DATA_DIR at a folder on it (see render.yaml)."
        )
    if settings.render and mount_point(settings.database) != mount_point(settings.data_dir):
        return EXIT_BAD_SETTINGS, (
            f"DATABASE_PATH: {settings.database} is not on the Render disk that holds DATA_DIR "
            f"({settings.data_dir}): it would be lost at the next deploy"
        )
    return layout.place_problem()


def take_lock(lock: InstanceLock, grace: float) -> None:
    """The lock, even from a watchdog orphaned by its supervisor's death (it is stopped first);
    raises AlreadyRunning when a live, supervised watchdog holds it."""
    from watchdog.runtime.orphans import reap_orphaned_watchdog

    try:
        lock.acquire()
    except AlreadyRunning as error:
        if reap_orphaned_watchdog(error.holder, grace) is None:
            raise
        lock.acquire()


SWITCH_INTERVAL = 0.001
"""Seconds a thread may hold the GIL while another waits for it (Python's default: 0.005).
Backups, checks and offsite pushes run in worker threads that take the GIL back between their
C calls; with 1 ms the event loop that answers HTTP gets it back sooner (the loop's longest
stall during a backup fell from about 20 ms to about 5 ms here)."""


class TrackedExecutor(ThreadPoolExecutor):
    """The event loop's default executor, counting the work it has not finished: at exit,
    worker threads still winding down (idle, told to end by the loop's close) are not taken for
    unfinished work."""

    def __init__(self) -> None:
        super().__init__(thread_name_prefix="asyncio")
        self._count_lock = threading.Lock()
        self._unfinished = 0

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        future = super().submit(fn, *args, **kwargs)
        with self._count_lock:
            self._unfinished += 1
        future.add_done_callback(self._finished)
        return future

    def _finished(self, _future: Future[Any]) -> None:
        with self._count_lock:
            self._unfinished -= 1

    @property
    def unfinished(self) -> int:
        """Work submitted and not done (running, or queued behind it)."""
        with self._count_lock:
            return self._unfinished


def run_bounded(service: WatchdogService) -> int:
    """Run the service; on the way out, do not wait for worker threads still busy (an offsite
    push, a drill): the shutdown budget is what supervisord and Render give us. Their work is
    restartable, and the next start cleans up what they leave."""
    sys.setswitchinterval(SWITCH_INTERVAL)
    loop = asyncio.new_event_loop()
    executor = TrackedExecutor()
    loop.set_default_executor(executor)
    try:
        code = loop.run_until_complete(service.run())
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()  # shuts the thread pool down without waiting
    unfinished = executor.unfinished
    if not unfinished:
        executor.shutdown(wait=True)  # its threads are idle: they end at once
    others = [
        thread
        for thread in threading.enumerate()
        if thread is not threading.main_thread()
        and thread.is_alive()
        and not thread.daemon
        and not thread.name.startswith("asyncio_")
    ]
    if unfinished or others:
        log.warning(
            "leaving %d unfinished background task(s) behind at exit",
            unfinished + len(others),
        )
        logging.shutdown()
        os._exit(code)
    return code
