"""The client side of the watchdog's own HTTP, for the local commands (``status``, ``restore``).

Loopback only, and never through a proxy: urllib's default opener follows ``http_proxy``,
``HTTP_PROXY`` and ``ALL_PROXY`` even for 127.0.0.1, and a proxy would see the admin secret
(``Authorization: Bearer …``) and every answer. ``no_proxy`` is not relied upon either.
"""

from __future__ import annotations

import urllib.request
from http.client import HTTPResponse

_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def open_direct(request: urllib.request.Request | str, timeout: float) -> HTTPResponse:
    """``urllib.request.urlopen`` without any proxy; raises what urlopen raises."""
    return _DIRECT.open(request, timeout=timeout)  # type: ignore[return-value]
