"""Failures queued for the Bot API methods (``fail_next``): the next calls of a method — for one
chat, or for any — answered with an error instead of done. Thread-safe: queued by a test,
taken by the server."""

from __future__ import annotations

import threading
from typing import Any

Failure = tuple[int, int]
"""An HTTP status and, for a 429, its ``retry_after``."""


def _key(method: str, chat_id: Any = None) -> str:
    return method.lower() if chat_id is None else f"{method.lower()}:{chat_id}"


class Failures:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queued: dict[str, list[Failure]] = {}

    def queue(
        self, method: str, status: int, times: int, retry_after: int, chat_id: int | None
    ) -> None:
        with self._lock:
            self._queued.setdefault(_key(method, chat_id), []).extend(
                [(status, retry_after)] * times
            )

    def left(self, method: str, chat_id: int | None = None) -> int:
        with self._lock:
            return len(self._queued.get(_key(method, chat_id), []))

    def clear(self) -> None:
        with self._lock:
            self._queued.clear()

    def take(self, method: str, chat_id: Any) -> Failure | None:
        """The failure for this call, if one is queued: the chat's own first, then the method's."""
        with self._lock:
            queued = self._queued.get(_key(method, chat_id)) or self._queued.get(_key(method))
            return queued.pop(0) if queued else None
