"""HTTP/1.1 to the running watchdog's loopback admin API, on a plain socket.

What the commands need of HTTP is one request and its answer on 127.0.0.1: urllib would load
``http.client``, ``email`` and ``ssl`` (8 MB of a 20 MB process) for it, and follow
``http_proxy``/``ALL_PROXY`` unless told not to (a proxy would see the admin secret). Here there
is no proxy to follow, and the answer is read within bounds: a status line, headers, a body of
``Content-Length`` bytes (or chunks, or up to the end) no larger than :data:`MAX_ANSWER`."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import BinaryIO

MAX_ANSWER = 32 * 1024 * 1024
"""Bytes of an answer's body at most (a catalogue of thousands of backups is a few MB)."""
MAX_HEAD = 64 * 1024
LOOPBACK = "http://127.0.0.1:"


class NoAnswer(OSError):
    """The watchdog did not answer, or not in HTTP: connection refused, a timeout, garbage."""


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes


def port_of(url: str) -> int:
    """The port of ``http://127.0.0.1:PORT``; ValueError for any other address."""
    if not url.startswith(LOOPBACK):
        raise ValueError(f"not a loopback address: {url!r}")
    port = int(url.removeprefix(LOOPBACK).rstrip("/"))
    if not 0 < port < 65536:
        raise ValueError(f"not a port: {port}")
    return port


def exchange(
    url: str,
    method: str,
    path: str,
    headers: dict[str, str],
    body: bytes | None,
    timeout: float,
) -> Answer:
    """One request to ``url`` (``http://127.0.0.1:PORT``) and its answer, whatever its status.
    Raises NoAnswer (an OSError) when there is none within ``timeout`` seconds per step."""
    head = [f"{method} {path} HTTP/1.1", f"Host: {url.removeprefix('http://')}"]
    head += [f"{name}: {value}" for name, value in headers.items()]
    head += ["Connection: close", f"Content-Length: {len(body or b'')}", "", ""]
    try:
        with socket.create_connection(("127.0.0.1", port_of(url)), timeout=timeout) as sock:
            sock.sendall("\r\n".join(head).encode("latin-1") + (body or b""))
            with sock.makefile("rb") as stream:
                return _read_answer(stream)
    except (OSError, ValueError) as error:
        if isinstance(error, NoAnswer):
            raise
        raise NoAnswer(str(error) or type(error).__name__) from None


def _read_answer(stream: BinaryIO) -> Answer:
    status_line = stream.readline(MAX_HEAD)
    parts = status_line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise NoAnswer(f"not an HTTP answer: {status_line[:80]!r}")
    fields: dict[str, str] = {}
    read = len(status_line)
    while True:
        line = stream.readline(MAX_HEAD)
        read += len(line)
        if not line or read > MAX_HEAD:
            raise NoAnswer("the answer's headers never end")
        if line in (b"\r\n", b"\n"):
            break
        name, _, value = line.decode("latin-1").partition(":")
        fields[name.strip().lower()] = value.strip()
    if fields.get("transfer-encoding", "").lower() == "chunked":
        body = _chunks(stream)
    elif "content-length" in fields:
        length = _size(fields["content-length"], 10)
        body = stream.read(length)
        if len(body) != length:
            raise NoAnswer(f"the answer ended after {len(body)} of {length} bytes")
    else:
        body = stream.read(MAX_ANSWER + 1)
        if len(body) > MAX_ANSWER:
            raise NoAnswer(f"the answer is larger than {MAX_ANSWER} bytes")
    return Answer(int(parts[1]), body)


def _chunks(stream: BinaryIO) -> bytes:
    body = bytearray()
    while True:
        size = _size(stream.readline(MAX_HEAD).split(b";")[0].strip().decode("latin-1"), 16)
        if size == 0:
            return bytes(body)
        chunk = stream.read(size)
        if len(chunk) != size or len(body) + size > MAX_ANSWER:
            raise NoAnswer("the answer's chunks are cut short or too large")
        body += chunk
        stream.readline(MAX_HEAD)


def _size(text: str, base: int) -> int:
    try:
        size = int(text, base)
    except ValueError:
        raise NoAnswer(f"not a size: {text[:20]!r}") from None
    if not 0 <= size <= MAX_ANSWER:
        raise NoAnswer(f"the answer is larger than {MAX_ANSWER} bytes")
    return size
