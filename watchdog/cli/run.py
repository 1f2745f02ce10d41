"""``python -m watchdog run``: the long-running watchdog (what supervisord starts)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import threading

from conf.exitcodes import EXIT_REFUSED
from conf.layout import DataLayout
from conf.logging import setup_logging
from conf.settings import load_settings_or_exit
from watchdog.data.disk import is_persistent, mount_point
from watchdog.data.fs import AlreadyRunning, InstanceLock
from watchdog.runtime.service import WatchdogService
from watchdog.web.front import WebFront
from watchdog.web.public import CannotServe

log = logging.getLogger("watchdog")


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


def refuse(message: str) -> int:
    print(f"watchdog: {message}", file=sys.stderr)
    return EXIT_REFUSED


def command(args: argparse.Namespace) -> int:
    settings = load_settings_or_exit("watchdog")
    if settings.render and not is_persistent(settings.data_dir):
        return refuse(
            f"refusing to start: RENDER is set but DATA_DIR ({settings.data_dir}) is on the "
            f"container's own filesystem (mount point {mount_point(settings.data_dir)}), which is "
            "wiped at every deploy: the database would be lost. Attach a Render disk and point "
            "DATA_DIR at a folder on it (see render.yaml)."
        )
    layout = DataLayout.from_settings(settings)
    layout.ensure()
    setup_logging("watchdog", settings.log_level, settings.secrets(), layout.logs)
    lock = InstanceLock(layout.lock_file)
    try:
        lock.acquire()
    except AlreadyRunning as error:
        log.error("refusing to start: %s", error)
        return refuse(f"refusing to start: {error}")
    try:
        front = WebFront(settings.host, settings.port)
        return run_bounded(WatchdogService(settings, layout, front=front))
    except CannotServe as error:
        log.error("%s", error)
        return EXIT_REFUSED
    finally:
        lock.release()


def run_bounded(service: WatchdogService) -> int:
    """Run the service; on the way out, do not wait for worker threads still busy (an offsite
    push, a drill): the shutdown budget is what supervisord and Render give us. Their work is
    restartable, and the next start cleans up what they leave."""
    loop = asyncio.new_event_loop()
    try:
        code = loop.run_until_complete(service.run())
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()  # shuts the thread pool down without waiting
    busy = [
        thread
        for thread in threading.enumerate()
        if thread is not threading.main_thread() and thread.is_alive() and not thread.daemon
    ]
    if busy:
        log.warning("leaving %d unfinished background task(s) behind at exit", len(busy))
        logging.shutdown()
        os._exit(code)
    return code
