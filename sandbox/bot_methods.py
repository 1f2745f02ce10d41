"""The Bot API methods with which the bot speaks: ``sendMessage``, ``editMessageText``,
``sendDocument``. Each answers what Telegram answers (the message as sent) and records it in the
chat log; a bad parameter raises KeyError/ValueError/TypeError, answered 400."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from typing import Any

from sandbox import wire
from sandbox.chat_log import ChatLog


class BotMethods:
    def __init__(
        self,
        bot_user: dict[str, Any],
        log: ChatLog,
        message_ids: Iterator[int],
        on_sent: Callable[[], None],
    ) -> None:
        self.bot_user = bot_user
        self.log = log
        self._message_ids = message_ids
        self._on_sent = on_sent
        """Called after each record (in the server's loop): wakes what waits for a change."""

    def send_message(self, params: dict[str, Any]) -> dict[str, Any]:
        text = str(params["text"])
        if not text:
            raise ValueError("message text is empty")
        message = self._message(params["chat_id"], text=text)
        self._record("sendMessage", message["chat"]["id"], message, text=text, params=params)
        return message

    def edit_message_text(self, params: dict[str, Any]) -> dict[str, Any] | bool:
        text = str(params["text"])
        if "inline_message_id" in params:
            self._record("editMessageText", None, {}, text=text, params=params)
            return True
        message = self._message(params["chat_id"], text=text)
        message["message_id"] = int(params["message_id"])
        message["edit_date"] = int(time.time())
        self._record("editMessageText", message["chat"]["id"], message, text=text, params=params)
        return message

    def send_document(self, params: dict[str, Any]) -> dict[str, Any]:
        document = params["document"]
        if isinstance(document, dict) and "content" in document:
            content: bytes | None = document["content"]
            filename = document["filename"]
        else:  # a file_id or URL
            content, filename = None, None
        file_id = f"fake-file-{secrets.token_hex(8)}"
        info = {"file_id": file_id, "file_unique_id": file_id[-8:]}
        if filename:
            info["file_name"] = filename
        if content is not None:
            info["file_size"] = len(content)
        caption = params.get("caption")
        message = self._message(params["chat_id"], document=info)
        if caption:
            message["caption"] = str(caption)
        self._record(
            "sendDocument",
            message["chat"]["id"],
            message,
            document=content,
            filename=filename,
            caption=caption,
            params={k: v for k, v in params.items() if k != "document"},
        )
        return message

    def _message(self, chat_id: Any, **content: Any) -> dict[str, Any]:
        chat_id = wire.chat_id(chat_id)
        is_user = isinstance(chat_id, int) and chat_id > 0
        chat = {"id": chat_id, "type": "private" if is_user else "group"}
        if not is_user:
            chat["title"] = f"Group {chat_id}"
        return {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": chat,
            "from": self.bot_user,
            **content,
        }

    def _record(self, method: str, chat_id: Any, message: dict[str, Any], **extra: Any) -> None:
        self.log.bot_sent(method, chat_id, message, **extra)
        self._on_sent()
