"""``python -m watchdog offsite-release``: through the state file when no watchdog runs, through
the running watchdog's admin API otherwise."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from conf.layout import DataLayout
from watchdog.data.fs import InstanceLock
from watchdog.data.remembered import RememberedStore
from watchdog.web.admin import AdminEndpoint


def remembered(cli) -> RememberedStore:
    return RememberedStore(DataLayout(cli.data, cli.database).state_file)


def test_release_without_a_watchdog_clears_the_fresh_start_and_nothing_else(cli):
    remembered(cli).update(
        fresh_start_at=1_800_000_000.0, fresh_start_reason="no usable backup", drill_at=5.0
    )
    refused = cli("offsite-release")  # not a terminal, no --yes: nothing changes
    assert refused.returncode == 1 and "add --yes" in refused.stderr
    assert remembered(cli).load().fresh_start_at == 1_800_000_000.0

    done = cli("offsite-release", "--yes")
    assert done.returncode == 0, done.stderr
    assert "released" in done.stdout and "2027-01-15" in done.stdout
    after = remembered(cli).load()
    assert (after.fresh_start_at, after.fresh_start_reason, after.drill_at) == (None, None, 5.0)

    again = cli("offsite-release", "--yes")
    assert again.returncode == 0 and "nothing to release" in again.stdout


class _Admin(BaseHTTPRequestHandler):
    answer: ClassVar[tuple[int, dict]] = (200, {"ok": True, "message": "released"})
    seen: ClassVar[list[tuple[str, str | None]]] = []

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).seen.append((self.path, self.headers.get("Authorization")))
        status, body = type(self).answer
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def running(cli):
    """A watchdog that holds DATA_DIR's lock and answers on a loopback admin port."""
    layout = DataLayout(cli.data, cli.database)
    lock = InstanceLock(layout.lock_file)
    lock.acquire()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Admin)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    AdminEndpoint(f"http://127.0.0.1:{server.server_address[1]}", "s3cret").save(layout.admin_file)
    _Admin.seen = []
    try:
        yield _Admin
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
        lock.release()


def test_release_with_a_running_watchdog_asks_it(cli, running):
    remembered(cli).update(fresh_start_at=1_800_000_000.0)
    running.answer = (200, {"ok": True, "message": "released by the watchdog"})
    done = cli("offsite-release", "--yes")
    assert done.returncode == 0, done.stderr
    assert "released by the watchdog" in done.stdout
    assert running.seen == [("/offsite/release", "Bearer s3cret")]
    # the running watchdog owns the state file: the command did not write it
    assert remembered(cli).load().fresh_start_at == 1_800_000_000.0


def test_a_refusal_of_the_running_watchdog_is_said_and_fails(cli, running):
    running.answer = (409, {"ok": False, "message": "busy restoring"})
    done = cli("offsite-release", "--yes")
    assert done.returncode == 1
    assert "busy restoring" in done.stderr
