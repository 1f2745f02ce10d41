"""The client side of the watchdog's own HTTP, for the local commands (``status``, ``restore``).

Loopback only, and never through a proxy: urllib's default opener follows ``http_proxy``,
``HTTP_PROXY`` and ``ALL_PROXY`` even for 127.0.0.1, and a proxy would see the admin secret
(``Authorization: Bearer …``) and every answer. ``no_proxy`` is not relied upon either.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from http.client import HTTPResponse
from typing import Any, Protocol

_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def open_direct(request: urllib.request.Request | str, timeout: float) -> HTTPResponse:
    """``urllib.request.urlopen`` without any proxy; raises what urlopen raises."""
    return _DIRECT.open(request, timeout=timeout)  # type: ignore[return-value]


class AdminAddress(Protocol):
    url: str
    secret: str


def ask_admin(
    endpoint: AdminAddress, path: str, body: dict[str, Any], timeout: float
) -> tuple[bool, str]:
    """POST ``body`` to the running watchdog's admin API; its ``ok`` and ``message``. Raises
    URLError, OSError or ValueError when the watchdog does not answer."""
    request = urllib.request.Request(
        f"{endpoint.url}{path}",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {endpoint.secret}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with open_direct(request, timeout=timeout) as answer:
            document = json.load(answer)
    except urllib.error.HTTPError as error:
        document = json.load(error)
    return bool(document.get("ok")), str(document.get("message"))
