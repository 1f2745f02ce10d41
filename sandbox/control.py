"""The stand-in's control side over HTTP, for a stand-in run as its own process (``python -m
sandbox``): ``POST /_control/send_text`` {user_id, text, ...}, ``POST /_control/send_update``
{update}, ``GET /_control/sent[?chat_id=]``, ``POST /_control/mode`` {mode},
``GET /_control/state``. Each is the Python method of the same name on the stand-in."""

from __future__ import annotations

from typing import Any, Protocol

from aiohttp import web

_SEND_TEXT_OPTIONS = frozenset({"first_name", "last_name", "username", "chat_id", "language_code"})


class Controlled(Protocol):
    """What the control side drives: the stand-in (:class:`sandbox.bot_api.LocalBotAPI`)."""

    get_updates_mode: str
    get_updates_calls: int
    confirmed_offset: int
    pending_updates: int

    def send_text(self, user_id: int, text: str, **options: Any) -> int: ...

    def send_update(self, update: dict[str, Any]) -> int: ...

    def sent(self, chat_id: int | str | None = None) -> list[dict[str, Any]]: ...

    def set_get_updates_mode(self, mode: str) -> None: ...


def install(app: web.Application, api: Controlled) -> None:
    routes = _ControlRoutes(api)
    app.router.add_post("/_control/send_text", routes.send_text)
    app.router.add_post("/_control/send_update", routes.send_update)
    app.router.add_get("/_control/sent", routes.sent)
    app.router.add_post("/_control/mode", routes.mode)
    app.router.add_get("/_control/state", routes.state)


class _ControlRoutes:
    def __init__(self, api: Controlled) -> None:
        self.api = api

    async def send_text(self, request: web.Request) -> web.Response:
        body = await _body(request)
        try:
            user_id, text = int(body.pop("user_id")), str(body.pop("text"))
            options = {k: v for k, v in body.items() if k in _SEND_TEXT_OPTIONS}
            update_id = self.api.send_text(user_id, text, **options)
        except (KeyError, ValueError, TypeError) as error:
            raise web.HTTPBadRequest(text=f"bad send_text: {error}") from None
        return web.json_response({"update_id": update_id})

    async def send_update(self, request: web.Request) -> web.Response:
        body = await _body(request)
        update = body.get("update", body)
        return web.json_response({"update_id": self.api.send_update(update)})

    async def sent(self, request: web.Request) -> web.Response:
        records = self.api.sent(request.query.get("chat_id"))
        # Bytes are not JSON: a document is reported by its size.
        shown = [
            {k: (len(v) if isinstance(v, bytes) else v) for k, v in r.items() if k != "params"}
            for r in records
        ]
        return web.json_response({"sent": shown})

    async def mode(self, request: web.Request) -> web.Response:
        body = await _body(request)
        try:
            self.api.set_get_updates_mode(str(body.get("mode")))
        except ValueError as error:
            raise web.HTTPBadRequest(text=str(error)) from None
        return web.json_response({"mode": self.api.get_updates_mode})

    async def state(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "mode": self.api.get_updates_mode,
                "get_updates_calls": self.api.get_updates_calls,
                "confirmed_offset": self.api.confirmed_offset,
                "pending_updates": self.api.pending_updates,
                "sent": len(self.api.sent()),
            }
        )


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text="expected a JSON object") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="expected a JSON object")
    return body
