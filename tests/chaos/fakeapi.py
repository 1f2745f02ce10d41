"""The fake Bot API of the tests, recording *when* the bot confirmed each update: the moment the
``offset`` of a ``getUpdates`` passed it."""

from __future__ import annotations

import bisect
import time
from typing import Any

from aiohttp import web

from tests.fakes.telegram_api import FakeTelegramAPI


class RecordingTelegramAPI(FakeTelegramAPI):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._ack_times: list[float] = []
        self._ack_offsets: list[int] = []

    async def _get_updates(self, params: dict[str, Any]) -> web.Response:
        # Runs on the server's loop; no await between this and the parent's own update of the
        # confirmed offset, so nothing interleaves.
        offset = int(params.get("offset") or 0)
        with self._lock:
            if offset > self._confirmed_offset:
                self._ack_times.append(time.time())
                self._ack_offsets.append(offset)
        return await super()._get_updates(params)

    def ack_time(self, update_id: int) -> float | None:
        """Wall-clock time (``time.time()``) the update was confirmed, or None (not yet)."""
        with self._lock:
            index = bisect.bisect_right(self._ack_offsets, update_id)
            return self._ack_times[index] if index < len(self._ack_times) else None
