"""The HTTP the running watchdog serves, opened and closed as one: the public endpoints on
HOST:PORT and the loopback admin API whose address and per-run secret the bot is given.

The runtime is handed a front (``WatchdogService(front=…)``) and never imports this layer.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from aiohttp import web

from watchdog.web.admin import AdminEndpoint, start_admin
from watchdog.web.protocols import Operable
from watchdog.web.public import start_http

log = logging.getLogger(__name__)


class WebFront:
    def __init__(self, host: str, port: int, public: bool = True) -> None:
        self.host = host
        self.port = port
        self.public = public
        self._runners: list[web.AppRunner] = []
        self._admin_file: Path | None = None

    async def open(self, service: Operable, admin_file: Path) -> AdminEndpoint:
        """Serve; the admin API's address and secret are written to ``admin_file`` (0600) for
        the CLI. Raises CannotServe when HOST:PORT is taken."""
        if self.public:
            self._runners.append(await start_http(service, self.host, self.port))
        runner, endpoint = await start_admin(service)
        self._runners.append(runner)
        try:
            await asyncio.to_thread(endpoint.save, admin_file)
        except OSError as error:  # a full disk must not keep the watchdog from starting
            log.error(
                "cannot write %s (%s): local commands will not find the running watchdog",
                admin_file,
                error,
            )
            return endpoint
        self._admin_file = admin_file
        return endpoint

    async def close(self) -> None:
        if self._admin_file is not None:
            self._admin_file.unlink(missing_ok=True)
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()
