"""What was said in the chats: every message the bot sent (``sent``: what tests assert on and wait
for) and each private chat as Telegram would show it, both sides in order (``conversation``: what
the chat page draws). The server thread records; any other thread reads and waits."""

from __future__ import annotations

import threading
import time
from typing import Any


class ChatLog:
    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._sent: list[dict[str, Any]] = []
        self._timeline: list[dict[str, Any]] = []

    def user_said(self, update: dict[str, Any]) -> None:
        """An update queued for the bot: a message from a user goes on the timeline."""
        message = update.get("message")
        if not (isinstance(message, dict) and isinstance(message.get("chat"), dict)):
            return
        with self._changed:
            self._timeline.append(
                {
                    "seq": len(self._timeline) + 1,
                    "chat_id": message["chat"].get("id"),
                    "from": "user",
                    "text": message.get("text") or message.get("caption") or "",
                }
            )

    def bot_sent(self, method: str, chat_id: Any, message: dict[str, Any], **extra: Any) -> None:
        record = {
            "method": method,
            "chat_id": chat_id,
            "message_id": message.get("message_id"),
            "result": message,
            "at": time.monotonic(),
            **extra,
        }
        with self._changed:
            self._sent.append(record)
            self._timeline.append(_said_by_bot(len(self._timeline) + 1, record))
            self._changed.notify_all()

    def sent(self, chat_id: int | str | None = None) -> list[dict[str, Any]]:
        """What the bot sent (sendMessage, sendDocument, editMessageText), oldest first.

        Each record: ``method``, ``chat_id``, ``text`` (or ``caption``), ``params`` (all of them,
        JSON-decoded where possible), ``message_id``, ``result``, ``at`` (monotonic time);
        documents add ``document`` (bytes, or None when sent by file_id/URL) and ``filename``.
        """
        with self._changed:
            records = list(self._sent)
        if chat_id is None:
            return records
        return [record for record in records if str(record.get("chat_id")) == str(chat_id)]

    def wait_for_sent(
        self,
        chat_id: int | str,
        contains: str | None = None,
        timeout: float = 10.0,
        after: int = 0,
    ) -> dict[str, Any]:
        """The first record for ``chat_id``, past the first ``after`` of them, containing
        ``contains`` in its text or caption; TimeoutError lists what was sent so far."""
        deadline = time.monotonic() + timeout

        def match() -> dict[str, Any] | None:
            records = [r for r in self._sent if str(r.get("chat_id")) == str(chat_id)]
            for record in records[after:]:
                body = record.get("text") or record.get("caption") or ""
                if contains is None or contains in body:
                    return record
            return None

        with self._changed:
            while True:
                found = match()
                if found is not None:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    so_far = [
                        (r["method"], r.get("chat_id"), r.get("text") or r.get("caption"))
                        for r in self._sent
                    ]
                    raise TimeoutError(
                        f"nothing containing {contains!r} sent to chat {chat_id} "
                        f"within {timeout}s (after {after}); sent so far: {so_far!r}"
                    )
                self._changed.wait(remaining)

    def conversation(self, chat_id: int | str, after: int = 0) -> list[dict[str, Any]]:
        """The chat's messages past sequence number ``after``, oldest first, each ``seq``,
        ``from`` (``user`` or ``bot``), ``text``; the bot's add ``method``, ``message_id``,
        ``buttons`` (rows of {text, data}), ``filename`` and ``size`` for a document."""
        with self._changed:
            return [
                dict(entry)
                for entry in self._timeline
                if entry["seq"] > after and str(entry.get("chat_id")) == str(chat_id)
            ]

    def message(self, chat_id: int | str, message_id: int) -> dict[str, Any] | None:
        """The newest message the bot sent to ``chat_id`` with ``message_id`` (for a button)."""
        for record in reversed(self.sent(chat_id)):
            if record.get("message_id") == message_id:
                return dict(record["result"])
        return None

    def document(self, chat_id: int | str, message_id: int) -> tuple[str, bytes] | None:
        """The file the bot sent as ``message_id`` to ``chat_id``: (name, content)."""
        for record in reversed(self.sent(chat_id)):
            if record.get("message_id") == message_id and isinstance(record.get("document"), bytes):
                return str(record.get("filename") or "file"), record["document"]
        return None


def _said_by_bot(seq: int, record: dict[str, Any]) -> dict[str, Any]:
    params = record.get("params") or {}
    markup = params.get("reply_markup")
    rows = markup.get("inline_keyboard", []) if isinstance(markup, dict) else []
    buttons = [
        [
            {"text": str(b.get("text", "")), "data": str(b.get("callback_data", ""))}
            for b in row
            if isinstance(b, dict)
        ]
        for row in rows
        if isinstance(row, list)
    ]
    entry: dict[str, Any] = {
        "seq": seq,
        "chat_id": record.get("chat_id"),
        "from": "bot",
        "method": record["method"],
        "message_id": record.get("message_id"),
        "text": str(record.get("text") or record.get("caption") or ""),
        "buttons": buttons,
    }
    if record["method"] == "sendDocument":
        content = record.get("document")
        entry["filename"] = record.get("filename")
        entry["size"] = len(content) if isinstance(content, bytes) else None
    return entry
