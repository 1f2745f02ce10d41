"""Network stand-ins for the safety tests: an aiohttp app served from a background thread, and a
"proxy" that only records who connected to it."""

from __future__ import annotations

import contextlib
import select
import socket
import threading
from typing import TypeVar

from aiohttp import web

from sandbox.background_loop import BackgroundLoop

T = TypeVar("T")
PROXY_VARIABLES = (
    "http_proxy",
    "HTTP_PROXY",
    "https_proxy",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "all_proxy",
)
NO_PROXY_VARIABLES = ("no_proxy", "NO_PROXY")


class ThreadedLoop(BackgroundLoop):
    """An event loop in a daemon thread, running from construction; synchronous tests hand it
    coroutines to run (``run``) and apps to serve (``serve``)."""

    def __init__(self) -> None:
        super().__init__("test-loop")
        self.start()
        self._runners: list[web.AppRunner] = []

    def serve(self, app: web.Application) -> int:
        """Serve ``app`` on 127.0.0.1 and a free port; the port."""
        runner = web.AppRunner(app, access_log=None)
        self.run(runner.setup())
        self._runners.append(runner)
        self.run(web.TCPSite(runner, "127.0.0.1", 0).start())
        return int(runner.addresses[0][1])

    def adopt(self, runner: web.AppRunner) -> None:
        """Clean ``runner`` up with the rest at close."""
        self._runners.append(runner)

    def close(self) -> None:
        self.stop(self._clean_up, timeout=10)

    async def _clean_up(self) -> None:
        for runner in reversed(self._runners):
            with contextlib.suppress(Exception):
                await runner.cleanup()


class RecordingProxy:
    """Listens on 127.0.0.1; every connection is counted (with its first bytes) and closed at once,
    so a client that does use the proxy fails fast instead of hanging."""

    def __init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(0.2)
        self.port = int(self._server.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self.seen: list[bytes] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _take(self, connection: socket.socket) -> None:
        with self._lock:  # counted the moment it is accepted, before anything is read
            index = len(self.seen)
            self.seen.append(b"")
        with connection:
            connection.settimeout(1.0)
            with contextlib.suppress(OSError):
                head = connection.recv(4096)
                with self._lock:
                    if index < len(self.seen):
                        self.seen[index] = head

    def _accept_one(self) -> bool:
        try:
            connection, _ = self._server.accept()
        except (TimeoutError, OSError):
            return False
        self._take(connection)
        return True

    def _accept(self) -> None:
        while not self._stop.is_set():
            self._accept_one()

    def connections(self) -> list[bytes]:
        """What connected so far, the listen backlog included (so nothing can be missed)."""
        while select.select([self._server], [], [], 0)[0]:
            if not self._accept_one():
                break
        with self._lock:
            return list(self.seen)

    def forget(self) -> None:
        with self._lock:
            self.seen.clear()

    def environment(self) -> dict[str, str]:
        """Every proxy variable pointing here."""
        return dict.fromkeys(PROXY_VARIABLES, self.url)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._server.close()
