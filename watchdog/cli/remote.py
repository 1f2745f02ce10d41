"""One process for the data: a command asks the running watchdog of this DATA_DIR to do its work
(over the loopback admin API, whose address and per-run secret are in ``DATA_DIR/run/admin.json``)
and does it itself only when no watchdog runs — when the instance lock says so, and is held
meanwhile if the work changes the data. A command that goes through the watchdog loads no more
than where the data is (``conf.env``) and a socket (``cli.loopback``): no settings framework,
no database code, no web framework, no urllib (a dozen MB, not a second runtime beside the
stack's).

The address file is tried first and the lock only when it does not answer, so a command run
while the stack starts never takes the lock from under the starting watchdog."""

from __future__ import annotations

import json
import time
import urllib.parse  # pathlib's already: no cost
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from conf.layout import DataLayout
from watchdog.cli.loopback import NoAnswer, exchange
from watchdog.cli.progress import Progress
from watchdog.data.fs import AlreadyRunning, InstanceLock
from watchdog.web.admin_endpoint import AdminEndpoint

ASK_TIMEOUT = 15.0
"""Seconds for one request to the admin API (a job's start, one look at it): answered at once."""
POLL = 0.25


class Unreachable(Exception):
    """No way to the data: a watchdog holds DATA_DIR but cannot be asked. One line."""


class SecretRefused(Unreachable):
    """The address file's secret is not the running watchdog's (401)."""


class Refused(Exception):
    """The watchdog answered, and said no (or the work failed): its one line."""


class Remote:
    def __init__(self, endpoint: AdminEndpoint, address_file: str) -> None:
        self.endpoint = endpoint
        self.address_file = address_file

    def ask(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """One request; the answer's JSON. Raises Refused for a refusal (400, 404, 409, 429…),
        Unreachable for a secret that is not this run's (401) or no answer."""
        headers = {
            "Authorization": f"Bearer {self.endpoint.secret}",
            "Content-Type": "application/json",
        }
        data = None if body is None else json.dumps(body).encode()
        try:
            answer = exchange(self.endpoint.url, method, path, headers, data, ASK_TIMEOUT)
        except NoAnswer as error:
            raise Unreachable(
                f"the watchdog at {self.endpoint.url} does not answer ({error})"
            ) from None
        if answer.status == 401:
            raise SecretRefused(
                f"the watchdog at {self.endpoint.url} refused the admin secret in "
                f"{self.address_file}: the file is not from the watchdog now running"
            )
        document = _document(answer.body)
        if not 200 <= answer.status < 300:
            raise Refused(str(document.get("error") or f"HTTP {answer.status}"))
        return document

    def run(self, action: str, body: dict[str, Any], progress: Progress) -> Any:
        """Start a job, follow it (its step on a terminal) until it ends; its answer. Raises
        Refused with the job's error, Unreachable when the watchdog stops answering."""
        job = self.ask("POST", f"/jobs/{action}", body)
        path = f"/jobs/{urllib.parse.quote(str(job['id']), safe='')}"
        try:
            with progress.running(str(job.get("step") or action)) as step:
                while job.get("state") == "running":
                    time.sleep(POLL)
                    job = self.ask("GET", path)
                    step.say(str(job.get("step") or action))
        except KeyboardInterrupt:
            raise Refused(
                f"interrupted: the watchdog goes on with {job['id']} (see its log, `status`)"
            ) from None
        if job.get("state") != "done":
            raise Refused(str(job.get("error") or f"the job ended {job.get('state')}"))
        return job.get("result")


def _document(data: bytes) -> dict[str, Any]:
    try:
        document = json.loads(data)
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise Refused("the watchdog's answer is not a JSON object")
    return document


def running_watchdog(layout: DataLayout) -> Remote | None:
    """The running watchdog when its address file is there and it answers; None otherwise."""
    endpoint = AdminEndpoint.load(layout.admin_file)
    if endpoint is None:
        return None
    remote = Remote(endpoint, str(layout.admin_file))
    try:
        remote.ask("GET", "/status")
    except SecretRefused:
        raise
    except Unreachable:
        return None  # a leftover of a watchdog that was killed, or one not serving yet
    return remote


@contextmanager
def reach(layout: DataLayout, hold: bool) -> Iterator[Remote | None]:
    """The running watchdog to ask, or None: no watchdog runs, do the work here. With ``hold``
    the instance lock is held until the block ends (no watchdog starts under the work); without,
    it was free a moment ago (the work only reads). Raises Unreachable when a watchdog holds the
    lock but cannot be asked."""
    remote = running_watchdog(layout)
    if remote is not None:
        yield remote
        return
    lock = InstanceLock(layout.lock_file)
    try:
        lock.acquire()
    except AlreadyRunning as error:
        endpoint = AdminEndpoint.load(layout.admin_file)
        where = (
            f"does not answer at {endpoint.url} (from {layout.admin_file})"
            if endpoint
            else f"left no admin address ({layout.admin_file})"
        )
        raise Unreachable(
            f"a watchdog (pid {error.holder or '?'}) holds {layout.root} but {where}; "
            "wait until it has started, or stop the stack and run the command again"
        ) from None
    if not hold:
        lock.release()
        yield None
        return
    try:
        yield None
    finally:
        lock.release()
