"""What the public HTTP endpoints show an anonymous caller, and how a malformed Authorization
header is answered: the real aiohttp apps (public and admin), served on 127.0.0.1 against a
small fake watchdog, asked with real HTTP requests."""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from conf.secret import Secret
from conf.settings import Settings
from tests.helpers import http_get
from tests.netfakes import ThreadedLoop
from watchdog.data.backups import Outcome
from watchdog.rules.health import HealthReport, Thresholds, assess
from watchdog.rules.state import BackupSummary, BotPhase, Integrity, WatchdogState
from watchdog.runtime.clock import SystemClock
from watchdog.web.admin import start_admin
from watchdog.web.protocols import Observable, Operable
from watchdog.web.public import build_app

DATA_DIR = "/srv/erix cast/data"  # a space: only a literal replacement can hide all of it
REPO_URL = "https://git.example/team/erixcast-backups.git"
SCP_URL = "git@git.example:team/erixcast-backups.git"
TABLES = {"users": 1234, "messages": 56789, "notes": 4321}
STATS_TOKEN = "stats-token-for-tests"


def busy_state(now: float) -> WatchdogState:
    """A watchdog that has seen things: every error text carries a URL or a path."""
    state = WatchdogState(started_at=now - 3600)
    state.loop_tick = now
    state.bot.phase = BotPhase.RUNNING
    state.bot.pid = 4242
    state.bot.launches = 1
    state.bot.last_heartbeat = now - 1
    db = state.database
    db.path = f"{DATA_DIR}/erixcast.db"
    db.exists = True
    db.size_bytes = 5 * 1024 * 1024
    db.integrity = Integrity.OK
    db.checked_at = now - 10
    db.tables = dict(TABLES)
    db.sqlite_version = "3.40.1"
    storage = state.storage
    storage.path = DATA_DIR
    storage.mount_point = "/srv/erix cast"
    storage.disk_usage_percent = 42.0
    storage.free_bytes = 10**9
    storage.total_bytes = 2 * 10**9
    storage.persistent_disk = True
    storage.measured_at = now - 5
    state.backups.intervals = {"hourly": 3600.0}
    state.backups.newest = {
        "hourly": BackupSummary("20240101T000000-hourly", "hourly", now - 60, 5_000_000, 5_000_000)
    }
    state.backups.count = 1
    state.backups.last_error = (
        f"hourly: [Errno 28] No space left on device: '{DATA_DIR}/backups/hourly/x.db.tmp'"
    )
    state.offsite.enabled = True
    state.offsite.failures = 2
    state.offsite.last_error = (
        f"could not reach {REPO_URL}: fatal: unable to access '{REPO_URL}/': "
        f"Could not resolve host: git.example (also tried {SCP_URL}, and "
        "git.example:team/erixcast-backups); cache in /var/lib/erixcast/cache.git"
    )
    state.recovery.count = 1
    state.recovery.last_at = now - 600
    state.recovery.last = {
        "reason": "integrity",
        "restored_from": "20240101T000000-hourly",
        "source": "local",
        "rejected": [f"{DATA_DIR}/backups/daily/bad.db: sha256 mismatch"],
        "quarantine": f"{DATA_DIR}/quarantine/20240101T010000",
        "salvage": {
            "read": {"messages": 120},
            "merged": {"messages": 5},
            "withheld": {"processed_updates": 3},
            "seconds": 0.2,
        },
        "seconds": 1.5,
    }
    state.recovery.fresh_start_at = now - 600
    state.recovery.fresh_start_reason = (
        "database restored; 5 rows salvaged from the damaged file; "
        f"damaged files kept in {DATA_DIR}/quarantine/20240101T010000"
    )
    state.drill.last_at = now - 100
    state.drill.results = [
        {"tier": "hourly", "id": "x", "ok": False, "detail": "cannot open ./run/drill/x.db"}
    ]
    return state


@dataclass
class FakeWatchdog:
    """Implements ``watchdog.web.protocols.Operable`` (and so ``Observable``)."""

    settings: Settings
    state: WatchdogState
    clock: SystemClock = field(default_factory=SystemClock)
    restores: list[str] = field(default_factory=list)

    def health(self) -> HealthReport:
        limits = Thresholds(
            disk_warn_percent=80,
            disk_critical_percent=95,
            heartbeat_timeout=60,
            integrity_check_every=900,
        )
        return assess(self.state, limits, self.clock.time())

    async def manual_backup(self, reason: str) -> tuple[Outcome | None, str | None]:
        return None, "no backups in this fake"

    async def manual_restore(
        self, wanted: str, from_git: bool = False, replay: bool = True
    ) -> tuple[bool, str]:
        self.restores.append(wanted)
        return True, f"restored backup {wanted}"


def fake_watchdog(stats_token: str | None) -> FakeWatchdog:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=Path(DATA_DIR),
        stats_token=Secret(stats_token) if stats_token else None,
        backup_git_url=REPO_URL,
    )
    return FakeWatchdog(settings=settings, state=busy_state(time.time()))


def _check_protocols(service: FakeWatchdog) -> tuple[Observable, Operable]:
    return service, service  # type-checked: the fake implements both protocols


@pytest.fixture
def loop() -> Iterator[ThreadedLoop]:
    served = ThreadedLoop()
    try:
        yield served
    finally:
        served.close()


def serve_public(loop: ThreadedLoop, stats_token: str | None) -> tuple[str, FakeWatchdog]:
    service = fake_watchdog(stats_token)
    return f"http://127.0.0.1:{loop.serve(build_app(service))}", service


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def keys(document: Any) -> set[str]:
    if isinstance(document, dict):
        return set(document) | {k for value in document.values() for k in keys(value)}
    if isinstance(document, list):
        return {k for value in document for k in keys(value)}
    return set()


def assert_no_location(body: str) -> None:
    for leak in ("git.example", "/srv/", "erix cast", "/var/lib", "./run/", "cache.git"):
        assert leak not in body, f"{leak!r} shown anonymously: {body}"


def assert_operator_fields(document: dict[str, Any]) -> None:
    assert {"status", "database", "storage", "bot", "backups", "checks"} <= set(document)
    assert {"type", "size_mb", "integrity", "last_backup", "records"} <= set(document["database"])
    assert {"disk_usage_percent", "persistent_disk"} <= set(document["storage"])


@pytest.mark.parametrize("stats_token", [None, STATS_TOKEN])
def test_health_never_shows_a_url_or_a_path(loop, stats_token):
    base, _ = serve_public(loop, stats_token)
    status, body = http_get(f"{base}/health")
    assert status == 200
    assert_no_location(body)
    document = json.loads(body)
    assert_operator_fields(document)
    assert not {"path", "data_dir", "mount_point", "database_path"} & keys(document)
    offsite_error = document["backups"]["offsite"]["last_error"]
    assert offsite_error.startswith("could not reach <url>: fatal: unable to access '<url>")
    assert "<path>" in document["backups"]["last_error"]
    assert document["recovery"]["last"]["quarantine"] == "<path>"
    assert document["database"]["integrity"] == "ok" and document["storage"]["persistent_disk"]


def test_without_a_stats_token_health_keeps_its_row_counts(loop):
    base, _ = serve_public(loop, None)
    document = json.loads(http_get(f"{base}/health")[1])
    assert document["database"]["records"] == sum(TABLES.values())
    assert document["recovery"]["last"]["salvage"]["merged"] == {"messages": 5}


def test_with_a_stats_token_health_shows_no_row_count(loop):
    base, _ = serve_public(loop, STATS_TOKEN)
    status, body = http_get(f"{base}/health")
    document = json.loads(body)
    assert status == 200
    assert "records" in document["database"] and document["database"]["records"] is None
    assert "tables" not in document["database"]
    salvage = document["recovery"]["last"]["salvage"]
    assert salvage["read"] is None and salvage["merged"] is None and salvage["withheld"] is None
    for count in (str(n) for n in (*TABLES.values(), sum(TABLES.values()))):
        assert count not in body
    assert "5 rows" not in body and "<n> rows salvaged" in document["checks"]["recovery"]["detail"]


def test_stats_behind_the_token_keeps_the_detail(loop):
    base, _ = serve_public(loop, STATS_TOKEN)
    assert http_get(f"{base}/stats")[0] == 401
    assert http_get(f"{base}/stats", headers=bearer("wrong"))[0] == 401
    status, body = http_get(f"{base}/stats", headers=bearer(STATS_TOKEN))
    assert status == 200
    document = json.loads(body)
    assert document["database"]["path"] == f"{DATA_DIR}/erixcast.db"
    assert document["database"]["tables"] == TABLES
    assert document["database"]["records"] == sum(TABLES.values())
    assert REPO_URL in document["backups"]["offsite"]["last_error"]
    assert STATS_TOKEN not in body


def test_metrics_hide_rows_per_table_from_anonymous_scrapes_once_a_token_is_set(loop):
    base, _ = serve_public(loop, STATS_TOKEN)
    status, anonymous = http_get(f"{base}/metrics")
    assert status == 200
    assert "erixcast_bot_up 1.0" in anonymous and "erixcast_health_status" in anonymous
    assert "erixcast_database_rows" not in anonymous
    assert_no_location(anonymous)
    status, full = http_get(f"{base}/metrics", headers=bearer(STATS_TOKEN))
    assert status == 200
    assert 'erixcast_database_rows{table="users"} 1234.0' in full
    assert http_get(f"{base}/metrics", headers=bearer("wrong"))[0] == 401


def test_metrics_without_a_token_show_everything(loop):
    base, _ = serve_public(loop, None)
    status, text = http_get(f"{base}/metrics")
    assert status == 200 and 'erixcast_database_rows{table="messages"} 56789.0' in text
    assert_no_location(text)


# -- a header that is not UTF-8 ---------------------------------------------------------------


def raw_get(port: int, path: str, authorization: bytes) -> tuple[int, bytes]:
    """A request no HTTP library would send: the Authorization header's raw bytes as given."""
    request = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n".encode()
        + b"Authorization: "
        + authorization
        + b"\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    status_line = answer.split(b"\r\n", 1)[0]
    return int(status_line.split()[1]), answer


BAD_HEADERS = [b"Bearer \xff\xfe", b"\xff\xfe", b"Bearer " + STATS_TOKEN.encode() + b"\xe9"]


def assert_plain_401(caplog, port: int, path: str) -> None:
    for header in BAD_HEADERS:
        caplog.clear()
        status, answer = raw_get(port, path, header)
        assert status == 401, answer
        assert b"Traceback" not in answer and b"Internal Server Error" not in answer
        problems = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
        assert not problems, [r.getMessage() for r in problems]


def test_a_non_utf8_authorization_header_is_a_plain_401_on_stats_and_metrics(loop, caplog):
    caplog.set_level(logging.DEBUG)
    base, _ = serve_public(loop, STATS_TOKEN)
    port = int(base.rsplit(":", 1)[1])
    assert_plain_401(caplog, port, "/stats")
    assert_plain_401(caplog, port, "/metrics")
    assert raw_get(port, "/stats", b"Bearer " + STATS_TOKEN.encode())[0] == 200


def test_a_non_utf8_authorization_header_is_a_plain_401_on_the_admin_api(loop, caplog):
    caplog.set_level(logging.DEBUG)
    service = fake_watchdog(STATS_TOKEN)
    runner, endpoint = loop.run(start_admin(service))
    loop.adopt(runner)
    port = int(endpoint.url.rsplit(":", 1)[1])
    assert_plain_401(caplog, port, "/status")
    assert raw_get(port, "/status", f"Bearer {endpoint.secret}".encode())[0] == 200
