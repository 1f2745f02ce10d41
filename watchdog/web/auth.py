"""One check of ``Authorization: Bearer <secret>`` for every endpoint that needs one.

aiohttp hands header values over as text decoded with ``surrogateescape``: a header carrying
bytes that are not UTF-8 (``Bearer \\xff\\xfe``) holds lone surrogates, which ``str.encode()``
refuses. Such a header is simply not the secret: a plain 401, never a 500 with a traceback.
"""

from __future__ import annotations

import base64
import binascii
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


def basic_password_matches(header: str | None, secret: str) -> bool:
    """True only when ``header`` is HTTP Basic with ``secret`` as the password (any user name):
    what a browser sends after its login prompt, so a person can open the status page without
    a token in the URL."""
    if not header or not secret or not header.startswith("Basic "):
        return False
    try:
        decoded = base64.b64decode(header[len("Basic ") :].encode("ascii"), validate=True)
        _user, colon, password = decoded.decode("utf-8").partition(":")
    except (UnicodeError, binascii.Error):
        return False
    return bool(colon) and hmac.compare_digest(password.encode(), secret.encode())


def authorised(request: web.Request, secret: str) -> bool:
    return bearer_matches(request.headers.get("Authorization"), secret)


def authorised_person(request: web.Request, secret: str) -> bool:
    """A bearer token, or a browser's Basic credentials whose password is the secret."""
    header = request.headers.get("Authorization")
    return bearer_matches(header, secret) or basic_password_matches(header, secret)


def sends_credentials(request: web.Request) -> bool:
    """Whether the caller tried to authenticate at all (an empty header counts as not)."""
    return bool(request.headers.get("Authorization"))
