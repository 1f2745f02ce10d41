"""One check of ``Authorization: Bearer <secret>`` for every endpoint that needs one.

aiohttp hands header values over as text decoded with ``surrogateescape``: a header carrying
bytes that are not UTF-8 (``Bearer \\xff\\xfe``) holds lone surrogates, which ``str.encode()``
refuses. Such a header is simply not the secret: a plain 401, never a 500 with a traceback.
"""

from __future__ import annotations

import hmac

from aiohttp import web


def bearer_matches(header: str | None, secret: str) -> bool:
    """True only when ``header`` is exactly ``Bearer <secret>`` (compared in constant time)."""
    if not header or not secret:
        return False
    try:
        given = header.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return hmac.compare_digest(given, f"Bearer {secret}".encode())


def authorised(request: web.Request, secret: str) -> bool:
    return bearer_matches(request.headers.get("Authorization"), secret)


def sends_credentials(request: web.Request) -> bool:
    """Whether the caller tried to authenticate at all (an empty header counts as not)."""
    return bool(request.headers.get("Authorization"))
