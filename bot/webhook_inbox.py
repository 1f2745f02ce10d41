"""Updates a webhook request brought in, waiting for their commit: the processor settles them,
the receiver (:mod:`bot.webhook`) answers Telegram when they are settled. Apart from the
receiver so that a polling bot loads no web server."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any


class WebhookInbox:
    """Updates received and not yet committed: one future per update_id, resolved by the
    processor's commit (``finish``) or by a claim held elsewhere (``give_back``)."""

    def __init__(self) -> None:
        self._waiting: dict[int, asyncio.Future[bool]] = {}
        self._raw: dict[int, dict[str, Any]] = {}
        self.closed = False

    def __len__(self) -> int:
        return len(self._waiting)

    def enter(self, update_id: int, raw: dict[str, Any]) -> tuple[asyncio.Future[bool], bool]:
        """The future to wait on, and whether this request brought the update first (a copy
        of one in hand waits on the same future and is not queued again)."""
        waiting = self._waiting.get(update_id)
        if waiting is not None:
            return waiting, False
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting[update_id] = future
        self._raw[update_id] = raw
        return future, True

    def raw(self, update_id: int) -> dict[str, Any] | None:
        return self._raw.get(update_id)

    def finish(self, update_ids: Sequence[int]) -> None:
        self._settle(update_ids, True)

    def give_back(self, update_ids: Sequence[int]) -> None:
        self._settle(update_ids, False)

    def close(self) -> None:
        """Stopping: whatever was not committed is answered with an error (delivered again)."""
        self.closed = True
        self._settle(list(self._waiting), False)

    def _settle(self, update_ids: Sequence[int], done: bool) -> None:
        for update_id in update_ids:
            self._raw.pop(update_id, None)
            future = self._waiting.pop(update_id, None)
            if future is not None and not future.done():
                future.set_result(done)
