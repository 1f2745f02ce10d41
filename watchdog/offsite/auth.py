"""Who wrote a package: an HMAC-SHA256 only the holder of ``BACKUP_AGE_KEY``'s secret can make.

age encrypts to a public key that anyone may hold, so a valid age envelope proves nothing about
its author. Every package therefore carries a MAC under a key derived from the age identity with
HKDF-SHA256 (RFC 5869), over the canonical JSON of its ``package.json`` (id, recipient, each
part's name, size and sha256, the encrypted manifest's size and sha256). It is checked before
anything is decrypted or unpacked. The key lives in memory only; no ``repr`` shows it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from pyrage import x25519

HKDF_SALT = b"erixcast-offsite"
HKDF_INFO = b"erixcast offsite package mac v1"
"""Fixed and versioned: a new derivation gets a new ``info`` (and a new package format)."""
MAC_ALGORITHM = "hmac-sha256/hkdf-sha256:" + HKDF_INFO.decode()
MAC_DOMAIN = b"erixcast-offsite-package\n"
"""Prefixed to what is authenticated, so this key's MACs mean nothing elsewhere."""


def hkdf_sha256(ikm: bytes, *, salt: bytes, info: bytes, length: int = 32) -> bytes:
    """RFC 5869: extract (HMAC of the input under the salt), then expand to ``length`` bytes."""
    if not 0 < length <= 255 * 32:
        raise ValueError("HKDF-SHA256 output length out of range")
    prk = hmac.new(salt or bytes(32), ikm, hashlib.sha256).digest()
    output, block = b"", b""
    counter = 1
    while len(output) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        output += block
        counter += 1
    return output[:length]


class MacKey:
    """The package MAC key. Never printed, never written: derived again from the identity."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        self._key = key

    @classmethod
    def from_identity(cls, identity: x25519.Identity) -> MacKey:
        # The identity's canonical text (bech32 of the X25519 secret) is the input keying material.
        return cls(hkdf_sha256(str(identity).encode(), salt=HKDF_SALT, info=HKDF_INFO))

    def __repr__(self) -> str:
        return "MacKey([redacted])"

    def sign(self, document: dict[str, Any]) -> str:
        return hmac.new(self._key, authenticated_bytes(document), hashlib.sha256).hexdigest()

    def verify(self, document: dict[str, Any], mac: object) -> bool:
        if not isinstance(mac, str):
            return False
        return hmac.compare_digest(self.sign(document).encode(), mac.encode("ascii", "replace"))


def authenticated_bytes(document: dict[str, Any]) -> bytes:
    """What the MAC covers: the document without its ``mac``, as canonical JSON."""
    body = {key: value for key, value in document.items() if key != "mac"}
    return (
        MAC_DOMAIN
        + json.dumps(
            body, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
        ).encode()
    )


def seal(document: dict[str, Any], key: MacKey) -> dict[str, Any]:
    """``document`` with its MAC added."""
    body = {k: v for k, v in document.items() if k != "mac"}
    return {**body, "mac": {"algorithm": MAC_ALGORITHM, "value": key.sign(body)}}


def is_authentic(document: dict[str, Any], key: MacKey) -> bool:
    """The document's MAC is ours (constant-time compare). No field is trusted before this."""
    mac = document.get("mac")
    if not isinstance(mac, dict) or mac.get("algorithm") != MAC_ALGORITHM:
        return False
    try:
        return key.verify(document, mac.get("value"))
    except (ValueError, TypeError, RecursionError):  # not JSON we could have written: not ours
        return False
