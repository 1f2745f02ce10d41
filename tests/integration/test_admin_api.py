"""The loopback admin API the bot's admin commands and the restore command use."""

from __future__ import annotations

import json
import signal
import stat
import sys
import urllib.request

import pytest

from tests import dbgen
from tests.helpers import base_env, free_port, get_json, http_get, wait_until

pytestmark = pytest.mark.integration


def call(url: str, secret: str | None, method: str = "GET") -> tuple[int, dict]:
    request = urllib.request.Request(url, method=method, data=b"{}" if method == "POST" else None)
    if secret:
        request.add_header("Authorization", f"Bearer {secret}")
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def test_admin_api_needs_its_secret_and_serves_status_backup_backups(processes, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    dbgen.create(data / "erixcast.db", 200_000)
    port = free_port()
    proc = processes.start(
        "watchdog", [sys.executable, "-m", "watchdog", "run"], base_env(data, port)
    )
    admin_file = data / "run" / "admin.json"
    wait_until(lambda: admin_file.exists(), timeout=20)
    assert stat.S_IMODE(admin_file.stat().st_mode) == 0o600
    admin = json.loads(admin_file.read_text())
    assert admin["url"].startswith("http://127.0.0.1:")
    assert not admin["url"].endswith(f":{port}"), "never on the public port"

    assert call(f"{admin['url']}/status", None)[0] == 401
    assert call(f"{admin['url']}/status", "wrong")[0] == 401
    status, doc = call(f"{admin['url']}/status", admin["secret"])
    assert status == 200 and doc["database"]["type"] == "sqlite"

    status, made = call(f"{admin['url']}/backup", admin["secret"], "POST")
    assert status == 200, made
    assert made["tier"] == "manual" and made["size_bytes"] > 0 and made["rows"]["messages"] > 0
    status, listed = call(f"{admin['url']}/backups", admin["secret"])
    assert listed["tiers"]["manual"]["id"] == made["id"]

    assert call(f"{admin['url']}/offsite/release", None, "POST")[0] == 401
    status, released = call(f"{admin['url']}/offsite/release", admin["secret"], "POST")
    assert status == 200 and released["ok"] and "nothing to release" in released["message"]

    assert http_get(f"http://127.0.0.1:{port}/backup")[0] == 404
    assert admin["secret"] not in proc.output()
    _, stats = get_json(f"http://127.0.0.1:{port}/stats")
    assert admin["secret"] not in json.dumps(stats)
    proc.popen.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    assert not admin_file.exists()
