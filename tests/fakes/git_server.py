"""An authenticated git server on 127.0.0.1 for tests: ``git http-backend`` behind a small HTTP
server that wants a Basic-auth token, as GitHub does (any user name; the token as password).

    with FakeGitServer(tmp_path / "git", token="t0k3n") as server:
        url = server.url(server.create_repo("backups.git"))
        server.mode = "down"      # connection refused
        server.mode = "hanging"   # accepts, reads nothing, never answers
        server.mode = "up"
        server.received            # what came in: method, path, query, user, authorized, headers

Request bodies are spooled to a file before the CGI runs (no pipe deadlocks, chunked uploads
de-chunked). Every thread and CGI process is stopped on exit, within a few seconds.
"""

from __future__ import annotations

import base64
import contextlib
import os
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

HANG_LIMIT = 60.0
CGI_LIMIT = 60.0
SOCKET_TIMEOUT = 10.0
CHUNK = 1 << 16


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    query: str
    user: str | None
    authorized: bool
    headers: dict[str, str] = field(repr=False)
    answered: int | None = None


def git_env(home: Path) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", os.defpath),
        "HOME": str(home),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "LANG": "C",
    }


class _Server(ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], owner: FakeGitServer) -> None:
        self.owner = owner
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = SOCKET_TIMEOUT
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _serve(self) -> None:
        owner = self.server.owner
        self.close_connection = True
        if owner.mode == "hanging":
            owner._record(self, None, False, None)
            owner._hang()
            return
        user, authorized = owner._check(self.headers.get("Authorization"))
        if not authorized:
            owner._record(self, user, False, 401)
            self._drain()
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="fake git"')
            self.send_header("Content-Length", "0")
            self.send_header("Connection", "close")
            self.end_headers()
            return
        body = self._spool_body()
        try:
            status = owner._run_cgi(self, user or "", body)
        finally:
            body.close()
        owner._record(self, user, True, status)

    def _drain(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._spool_body().close()

    def _spool_body(self) -> Any:
        spool = tempfile.TemporaryFile()  # noqa: SIM115 - returned to the caller, who closes it
        if self.command != "POST":
            return spool
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                size_line = self.rfile.readline(1024)
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                remaining = size
                while remaining:
                    chunk = self.rfile.read(min(remaining, CHUNK))
                    if not chunk:
                        raise ConnectionError("client went away")
                    spool.write(chunk)
                    remaining -= len(chunk)
                self.rfile.readline(16)
        else:
            remaining = int(self.headers.get("Content-Length") or 0)
            while remaining:
                chunk = self.rfile.read(min(remaining, CHUNK))
                if not chunk:
                    raise ConnectionError("client went away")
                spool.write(chunk)
                remaining -= len(chunk)
        spool.seek(0)
        return spool


class FakeGitServer:
    def __init__(self, root: Path, token: str) -> None:
        self.root = root
        self.token = token
        self.mode = "up"
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._processes: set[subprocess.Popen[bytes]] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> FakeGitServer:
        self.root.mkdir(parents=True, exist_ok=True)
        self._start(0)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start(self, port: int) -> None:
        server = _Server(("127.0.0.1", port), self)
        self.port = server.server_address[1]
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )
        thread.start()
        self._server, self._thread = server, thread

    def _stop_listening(self) -> None:
        if self._server is None:
            return
        server, thread = self._server, self._thread
        self._server, self._thread = None, None
        server.shutdown()
        server.server_close()  # joins the request threads
        if thread is not None:
            thread.join(5)

    def close(self) -> None:
        self._stopping.set()
        with self._lock:
            for process in list(self._processes):
                with contextlib.suppress(OSError):
                    process.kill()
        self._stop_listening()

    @property
    def mode(self) -> str:
        return self._mode

    @mode.setter
    def mode(self, value: str) -> None:
        if value not in ("up", "down", "hanging"):
            raise ValueError(value)
        self._mode = value
        if not hasattr(self, "_server"):
            return
        if value == "down":
            self._stop_listening()
        elif self._server is None and not self._stopping.is_set():
            self._start(self.port)

    # -- repositories ------------------------------------------------------------------------

    def create_repo(self, name: str = "backups.git") -> Path:
        path = self.root / name
        env = git_env(self.root)
        subprocess.run(
            ["git", "init", "--quiet", "--bare", str(path)], check=True, env=env, timeout=30
        )
        for key, value in (("http.receivepack", "true"), ("uploadpack.allowFilter", "true")):
            subprocess.run(
                ["git", "--git-dir", str(path), "config", key, value],
                check=True,
                env=env,
                timeout=30,
            )
        return path

    def url(self, repo: Path | str) -> str:
        name = repo.name if isinstance(repo, Path) else repo
        return f"http://127.0.0.1:{self.port}/{name}"

    # -- internals ---------------------------------------------------------------------------

    def _hang(self) -> None:
        """Never answer: until the mode changes, the server closes, or HANG_LIMIT passes."""
        deadline = time.monotonic() + HANG_LIMIT
        while self.mode == "hanging" and time.monotonic() < deadline:
            if self._stopping.wait(0.05):
                return

    def _check(self, header: str | None) -> tuple[str | None, bool]:
        if not header or not header.startswith("Basic "):
            return None, False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return None, False
        return user, password == self.token

    def _record(
        self, handler: _Handler, user: str | None, authorized: bool, status: int | None
    ) -> None:
        parts = urlsplit(handler.path)
        entry = Received(
            handler.command,
            parts.path,
            parts.query,
            user,
            authorized,
            dict(handler.headers.items()),
            status,
        )
        with self._lock:
            self.received.append(entry)

    def _run_cgi(self, handler: _Handler, user: str, body: Any) -> int:
        parts = urlsplit(handler.path)
        headers = handler.headers
        env = git_env(self.root)
        env.update(
            GIT_PROJECT_ROOT=str(self.root),
            GIT_HTTP_EXPORT_ALL="1",
            GATEWAY_INTERFACE="CGI/1.1",
            SERVER_PROTOCOL="HTTP/1.1",
            REQUEST_METHOD=handler.command,
            PATH_INFO=parts.path,
            QUERY_STRING=parts.query,
            REMOTE_USER=user or "anonymous",
            REMOTE_ADDR="127.0.0.1",
            CONTENT_TYPE=headers.get("Content-Type", ""),
        )
        if headers.get("Git-Protocol"):
            env["GIT_PROTOCOL"] = headers["Git-Protocol"]
        if headers.get("Content-Encoding"):
            env["HTTP_CONTENT_ENCODING"] = headers["Content-Encoding"]
        if handler.command == "POST":
            body.seek(0, os.SEEK_END)
            env["CONTENT_LENGTH"] = str(body.tell())
            body.seek(0)
        process = subprocess.Popen(
            ["git", "http-backend"],
            stdin=body,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        with self._lock:
            self._processes.add(process)
        timer = threading.Timer(CGI_LIMIT, process.kill)
        timer.start()
        try:
            assert process.stdout is not None
            status, cgi_headers = self._read_cgi_headers(process.stdout)
            handler.send_response(status)
            for key, value in cgi_headers:
                handler.send_header(key, value)
            handler.send_header("Connection", "close")
            handler.end_headers()
            while chunk := process.stdout.read1(CHUNK):
                handler.wfile.write(chunk)
            handler.wfile.flush()
            return status
        finally:
            timer.cancel()
            with contextlib.suppress(OSError):
                process.kill()
            process.wait(10)
            if process.stdout is not None:
                process.stdout.close()
            with self._lock:
                self._processes.discard(process)

    @staticmethod
    def _read_cgi_headers(stream: Any) -> tuple[int, list[tuple[str, str]]]:
        status = 200
        found: list[tuple[str, str]] = []
        while True:
            line = stream.readline(8192)
            if not line or line in (b"\r\n", b"\n"):
                break
            key, _, value = line.decode("latin-1").partition(":")
            key, value = key.strip(), value.strip()
            if key.lower() == "status":
                status = int(value.split()[0])
            elif key.lower() not in ("connection", "transfer-encoding"):
                found.append((key, value))
        return status, found
