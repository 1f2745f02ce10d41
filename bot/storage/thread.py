"""The one thread all database work runs on."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


class DatabaseThread:
    """Runs every database call on one dedicated thread, off the event loop.

    dataset keeps a connection per thread and its schema handling is not thread-safe; one worker
    thread keeps it simple, and queued calls run in order.
    """

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="erixcast-db")

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run and wait (for start-up and shutdown, outside the event loop)."""
        return self._executor.submit(fn, *args, **kwargs).result()

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=False)
