"""The bot's sign of life: the heartbeat file's mtime moves on every getUpdates that comes back.

A live pid proves nothing (a dead network or a wedged loop hangs polling): the watchdog restarts a
bot whose heartbeat is older than BOT_HEARTBEAT_TIMEOUT. Any answer counts, an error status or a
refused connection included: the polling loop is alive and backing off, and a restart would not
make Telegram answer sooner. Only silence (a request that times out) lets the heartbeat go stale.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from telegram.error import NetworkError, TimedOut
from telegram.request import HTTPXRequest

log = logging.getLogger(__name__)

POLL_READ_MARGIN = 5.0
"""Seconds a getUpdates answer may take beyond the long-poll timeout (python-telegram-bot adds the
long-poll timeout to this read timeout). It also bounds the last, short getUpdates at shutdown."""


class Heartbeat:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._failing = False

    def beat(self) -> None:
        """Create the file or move its mtime to now. Never raises: a full disk must not stop
        polling (the watchdog then sees a stale heartbeat and looks at the disk)."""
        try:
            try:
                os.utime(self.path)
            except FileNotFoundError:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.path.touch()
        except OSError as error:
            if not self._failing:
                log.warning("cannot update the heartbeat file %s: %s", self.path, error)
            self._failing = True
            return
        if self._failing:
            log.info("heartbeat file %s is being updated again", self.path)
        self._failing = False


class HeartbeatRequest(HTTPXRequest):
    """The get_updates request: each successful getUpdates answer beats the heartbeat."""

    __slots__ = ("_heartbeat",)

    def __init__(self, heartbeat: Heartbeat, **kwargs: Any) -> None:
        kwargs.setdefault("read_timeout", POLL_READ_MARGIN)
        super().__init__(**kwargs)
        self._heartbeat = heartbeat

    async def do_request(
        self, url: str, method: str, *args: Any, **kwargs: Any
    ) -> tuple[int, bytes]:
        polling = url.endswith("/getUpdates")
        try:
            code, payload = await super().do_request(url, method, *args, **kwargs)
        except TimedOut:
            raise  # silence: let the heartbeat age
        except NetworkError:
            if polling:
                self._heartbeat.beat()  # refused or reset at once: the loop is alive, retrying
            raise
        if polling:
            self._heartbeat.beat()
        return code, payload
