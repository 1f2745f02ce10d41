"""The sandbox's chat page: a small Telegram-like window in the browser where a newcomer talks to
the bot through the local Bot API stand-in (``bot_api``). It is served by the stand-in itself:

- ``GET /`` the page (one HTML document; its script at ``/chat.js``, same origin, no outside
  asset);
- ``POST /chat/send`` {"text"} — a message from the demo user, as Telegram would deliver it;
- ``POST /chat/press`` {"message_id", "data"} — a press on one of the bot's inline buttons;
- ``GET /chat/messages?after=N&wait=S`` — the conversation past N, waiting up to S seconds
  (at most 25) for something new: a long poll, so a reply shows the moment the bot sends it;
- ``GET /chat/file/<message_id>`` — a document the bot sent (``/export``), as a download.

One demo user (``DEMO_USER``); everything on 127.0.0.1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp import web

from sandbox.bot_api import LocalBotAPI

DEMO_USER = {"id": 1001, "first_name": "Ada", "username": "ada_demo"}
MAX_WAIT = 25.0
MAX_TEXT = 4096
_HERE = Path(__file__).parent
_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class ChatPage:
    def __init__(self, api: LocalBotAPI, user: dict[str, Any] | None = None) -> None:
        self.api = api
        self.user = dict(user or DEMO_USER)

    def install(self, app: web.Application) -> None:
        app.router.add_get("/", self.page)
        app.router.add_get("/chat.js", self.script)
        app.router.add_post("/chat/send", self.send)
        app.router.add_post("/chat/press", self.press)
        app.router.add_get("/chat/messages", self.messages)
        app.router.add_get("/chat/file/{message_id}", self.file)

    async def page(self, request: web.Request) -> web.Response:
        html = (_HERE / "chat.html").read_text(encoding="utf-8")
        html = html.replace("{{BOT_NAME}}", str(self.api.bot_user["first_name"]))
        html = html.replace("{{USER_NAME}}", str(self.user["first_name"]))
        return web.Response(text=html, content_type="text/html", headers=_HEADERS)

    async def script(self, request: web.Request) -> web.Response:
        text = (_HERE / "chat.js").read_text(encoding="utf-8")
        return web.Response(text=text, content_type="text/javascript", headers=_HEADERS)

    async def _body(self, request: web.Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise web.HTTPBadRequest(text="expected a JSON object")
        return body

    async def send(self, request: web.Request) -> web.Response:
        text = str((await self._body(request)).get("text") or "").strip()
        if not text or len(text) > MAX_TEXT:
            raise web.HTTPBadRequest(text=f"a message is 1 to {MAX_TEXT} characters")
        update_id = self.api.send_text(
            self.user["id"],
            text,
            first_name=self.user["first_name"],
            username=self.user.get("username"),
        )
        return web.json_response({"update_id": update_id}, headers=_HEADERS)

    async def press(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        try:
            message_id = int(body["message_id"])
        except (KeyError, TypeError, ValueError):
            raise web.HTTPBadRequest(text="message_id is a number") from None
        message = self.api.message(self.user["id"], message_id)
        if message is None:
            raise web.HTTPNotFound(text="no such message")
        update_id = self.api.send_callback(
            self.user["id"],
            str(body.get("data") or ""),
            message,
            first_name=self.user["first_name"],
        )
        return web.json_response({"update_id": update_id}, headers=_HEADERS)

    async def messages(self, request: web.Request) -> web.Response:
        try:
            after = int(request.query.get("after", "0"))
            wait = min(MAX_WAIT, max(0.0, float(request.query.get("wait", "0"))))
        except ValueError:
            raise web.HTTPBadRequest(text="after and wait are numbers") from None
        found = self.api.conversation(self.user["id"], after)
        if not found and wait > 0:
            await self.api.changed(wait)
            found = self.api.conversation(self.user["id"], after)
        return web.json_response({"messages": found}, headers=_HEADERS)

    async def file(self, request: web.Request) -> web.Response:
        try:
            message_id = int(request.match_info["message_id"])
        except ValueError:
            raise web.HTTPNotFound() from None
        found = self.api.document(self.user["id"], message_id)
        if found is None:
            raise web.HTTPNotFound(text="no such file")
        name, content = found
        safe = "".join(c for c in name if c.isalnum() or c in "._-") or "file"
        return web.Response(
            body=content,
            content_type="application/octet-stream",
            headers={**_HEADERS, "Content-Disposition": f'attachment; filename="{safe}"'},
        )
