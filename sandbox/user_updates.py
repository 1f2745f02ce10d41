"""Updates as Telegram builds them when a user does something: a message (text or any other
kind), an edit, a press of an inline button. Plain dictionaries, the Bot API's shape."""

from __future__ import annotations

from typing import Any


def text_message(
    message_id: int,
    now: int,
    user_id: int,
    text: str,
    *,
    first_name: str,
    last_name: str | None,
    username: str | None,
    chat_id: int | None,
    language_code: str | None,
) -> dict[str, Any]:
    """A text from a user, in their private chat unless ``chat_id`` names a group."""
    user: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": first_name}
    for key, value in (
        ("last_name", last_name),
        ("username", username),
        ("language_code", language_code),
    ):
        if value is not None:
            user[key] = value
    if chat_id is None or chat_id == user_id:
        chat = {key: user[key] for key in ("first_name", "last_name", "username") if key in user}
        chat.update(id=user_id, type="private")
    else:
        chat = {"id": chat_id, "type": "group", "title": f"Group {chat_id}"}
    message: dict[str, Any] = {
        "message_id": message_id,
        "date": now,
        "chat": chat,
        "from": user,
        "text": text,
    }
    if text.startswith("/"):
        command = text.split(maxsplit=1)[0]
        message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
    return {"message": message}


def any_message(
    message_id: int, now: int, user_id: int, first_name: str, content: dict[str, Any]
) -> dict[str, Any]:
    """A message of any kind (``photo=[...]``, ``sticker={...}``) in the user's private chat."""
    message = {
        "message_id": message_id,
        "date": now,
        "chat": {"id": user_id, "type": "private", "first_name": first_name},
        "from": {"id": user_id, "is_bot": False, "first_name": first_name},
        **content,
    }
    return {"message": message}


def edited_message(
    now: int, user_id: int, message_id: int, text: str, first_name: str
) -> dict[str, Any]:
    """The user changed their message ``message_id`` to ``text``."""
    message = {
        "message_id": message_id,
        "date": now - 1,
        "edit_date": now,
        "chat": {"id": user_id, "type": "private", "first_name": first_name},
        "from": {"id": user_id, "is_bot": False, "first_name": first_name},
        "text": text,
    }
    return {"edited_message": message}


def callback_query(
    query_id: str, user_id: int, data: str, message: dict[str, Any], first_name: str
) -> dict[str, Any]:
    """A press of an inline button carrying ``data`` under the bot's ``message``."""
    query = {
        "id": query_id,
        "from": {"id": user_id, "is_bot": False, "first_name": first_name},
        "chat_instance": f"ci-{user_id}",
        "message": message,
        "data": data,
    }
    return {"callback_query": query}
