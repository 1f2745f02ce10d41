"""The Bot API's wire format as the stand-in speaks it: parameters in (query, form, multipart or
JSON; nested objects JSON-encoded), answers and Telegram's error bodies out."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from aiohttp import web

UNAUTHORIZED = {"ok": False, "error_code": 401, "description": "Unauthorized"}
CONFLICT = {
    "ok": False,
    "error_code": 409,
    "description": "Conflict: terminated by other getUpdates request; make sure that only one "
    "bot instance is running",
}
NOT_IMPLEMENTED = {
    "ok": False,
    "error_code": 400,
    "description": "Bad Request: method not implemented in fake",
}


async def read_params(request: web.Request) -> dict[str, Any]:
    params: dict[str, Any] = dict(request.query)
    if request.method == "POST" and request.can_read_body:
        if request.content_type == "application/json":
            with contextlib.suppress(ValueError):
                body = await request.json()
                if isinstance(body, dict):
                    params.update(body)
        else:
            form = await request.post()
            for key, value in form.items():
                if isinstance(value, web.FileField):
                    params[key] = {"filename": value.filename, "content": value.file.read()}
                else:
                    params[key] = value
    return {key: decode(value) for key, value in params.items()}


def decode(value: Any) -> Any:
    """Form values arrive as strings; nested objects (reply_markup, entities...) as JSON."""
    if isinstance(value, str) and value[:1] in ("{", "["):
        with contextlib.suppress(ValueError):
            return json.loads(value)
    return value


def answer(result: Any) -> web.Response:
    return web.json_response({"ok": True, "result": result})


def bad_request(error: Exception) -> web.Response:
    body = {"ok": False, "error_code": 400, "description": f"Bad Request: {error}"}
    return web.json_response(body, status=400)


def error_response(status: int, retry_after: int = 1) -> web.Response:
    if status == 409:
        return web.json_response(CONFLICT, status=409)
    if status == 401:
        return web.json_response(UNAUTHORIZED, status=401)
    if status == 429:
        body = {
            "ok": False,
            "error_code": 429,
            "description": f"Too Many Requests: retry after {retry_after}",
            "parameters": {"retry_after": retry_after},
        }
        return web.json_response(body, status=429)
    if status == 502:
        return web.Response(status=502, text="Bad Gateway")
    body = {"ok": False, "error_code": status, "description": f"Error {status}"}
    return web.json_response(body, status=status)


def chat_id(value: Any) -> int | str:
    """A ``chat_id`` parameter: an integer, or an ``@username``; else Telegram's error."""
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if text.lstrip("-").isdigit():
        return int(text)
    if text.startswith("@"):
        return text
    raise ValueError("chat not found")
