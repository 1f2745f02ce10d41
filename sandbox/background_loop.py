"""An asyncio event loop in a daemon thread, so that synchronous code (a test, the demo) can run
a server on it and drive that server with plain method calls."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


async def _nothing() -> None:
    return None


class BackgroundLoop:
    def __init__(self, name: str) -> None:
        self.name = name
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def started(self) -> bool:
        return self._thread is not None

    def start(self, setup: Callable[[], Awaitable[None]] = _nothing, timeout: float = 10.0) -> None:
        """The loop running in its thread once ``setup()`` has completed on it; what setup
        raised is raised here (and the thread ended)."""
        if self._thread is not None:
            raise RuntimeError(f"{self.name} is already running")
        started = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self.loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(setup())
            except BaseException as error:  # reported to the caller of start()
                failure.append(error)
                started.set()
                loop.close()
                return
            started.set()
            try:
                loop.run_forever()
            finally:
                with contextlib.suppress(Exception):
                    pending = asyncio.all_tasks(loop)
                    for task in pending:
                        task.cancel()
                    loop.run_until_complete(
                        asyncio.wait_for(
                            asyncio.gather(*pending, return_exceptions=True), timeout=2
                        )
                    )
                loop.close()

        self._thread = threading.Thread(target=serve, name=self.name, daemon=True)
        self._thread.start()
        if not started.wait(timeout):
            raise TimeoutError(f"{self.name} did not start in time")
        if failure:
            self._thread.join(timeout)
            self._thread = None
            raise failure[0]

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 15.0) -> T:
        """Run ``coroutine`` on the loop from another thread; its result (or what it raised)."""
        if self.loop is None:
            raise RuntimeError(f"{self.name} is not running")
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def stop(
        self, teardown: Callable[[], Awaitable[None]] = _nothing, timeout: float = 5.0
    ) -> None:
        """``teardown()`` run on the loop (waited for at most ``timeout``), then the loop and its
        thread ended; never blocks past the timeouts."""
        thread, loop = self._thread, self.loop
        if thread is None or loop is None:
            return
        if loop.is_running():
            future = asyncio.run_coroutine_threadsafe(_awaited(teardown), loop)
            with contextlib.suppress(Exception):
                future.result(timeout)
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        self._thread = None

    def call_soon(self, callback: Callable[[], object]) -> None:
        """``callback()`` on the loop, from any thread; nothing when the loop is not running."""
        loop = self.loop
        if loop is not None and loop.is_running():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(callback)


async def _awaited(make: Callable[[], Awaitable[None]]) -> None:
    await make()
