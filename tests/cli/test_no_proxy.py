"""The local commands talk to the running watchdog over loopback and never through a proxy: a
proxy set in the environment (``http_proxy``, ``HTTP_PROXY``, ``ALL_PROXY``…) would otherwise see
the admin secret and every answer. The real CLI against a real running watchdog."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.helpers import get_json, wait_until
from tests.netfakes import NO_PROXY_VARIABLES, RecordingProxy


@pytest.fixture
def proxy() -> Iterator[RecordingProxy]:
    recorder = RecordingProxy()
    try:
        yield recorder
    finally:
        recorder.close()


def proxied(env: dict[str, str], proxy: RecordingProxy) -> dict[str, str]:
    env = {key: value for key, value in env.items() if key not in NO_PROXY_VARIABLES}
    return {**env, **proxy.environment()}


def test_status_and_restore_reach_the_watchdog_directly_whatever_the_proxy(cli, processes, proxy):
    watchdog = processes.start("watchdog", [sys.executable, "-m", "watchdog", "run"], cli.env)
    health_url = f"http://127.0.0.1:{cli.port}/health"
    wait_until(
        lambda: get_json(health_url)[1]["backups"]["tiers"]["hourly"], timeout=30, what="a backup"
    )
    made = cli("backup")
    assert made.returncode == 0, made.stderr
    backup_id = made.stdout.split()[1]  # "backup <id> (manual): …"
    cli.env = proxied(cli.env, proxy)

    # The setting is real: Python's default opener would hand this request to the proxy.
    control = subprocess.run(
        [sys.executable, "-c", f"import urllib.request; urllib.request.urlopen({health_url!r})"],
        env=cli.env,
        capture_output=True,
        timeout=30,
    )
    assert control.returncode != 0 and len(proxy.connections()) == 1
    assert proxy.connections()[0].startswith(b"GET http://127.0.0.1:")
    proxy.forget()

    status = cli("status")
    assert status.returncode == 1, status.stderr  # degraded: no bot token
    assert "ErixCast is degraded" in status.stdout
    as_json = cli("status", "--json")
    assert json.loads(as_json.stdout)["database"]["type"] == "sqlite"

    admin = json.loads((cli.data / "run" / "admin.json").read_text())
    restored = cli("restore", backup_id, "--yes")
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert "restored backup" in restored.stdout

    seen = proxy.connections()
    assert seen == [], f"the proxy saw {len(seen)} connections: {seen!r}"
    assert admin["secret"] not in status.stdout + restored.stdout + restored.stderr
    watchdog.popen.send_signal(signal.SIGTERM)
    assert watchdog.wait(30) == 0
