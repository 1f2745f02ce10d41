"""``make demo`` as a newcomer meets it: the whole stack (supervisord → watchdog → bot) against
the sandbox's Bot API stand-in, seen through a real headless Chromium — the chat page (/start
answered with the greeting, notes and search) and the watchdog's status page — and its live
/metrics read by the real ``promtool check metrics``."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from tests.browser import Chromium
from tests.helpers import (
    REPO,
    Proc,
    ProcessPool,
    base_env,
    free_port,
    get_json,
    http_get,
    wait_until,
)

pytestmark = pytest.mark.integration


@dataclass
class Demo:
    proc: Proc
    chat_url: str
    port: int
    data: Path

    def health(self) -> dict:
        return get_json(f"http://127.0.0.1:{self.port}/health")[1]


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Iterator[Demo]:
    workdir = tmp_path_factory.mktemp("demo")
    pool = ProcessPool(workdir)
    chat_port, port = free_port(), free_port()
    # base_env drops the developer's own settings; the demo drops them too, and reads no .env.
    env = base_env(workdir / "unused", port)
    try:
        proc = pool.start(
            "demo",
            [
                sys.executable,
                "-m",
                "sandbox.demo",
                "--chat-port",
                str(chat_port),
                "--port",
                str(port),
                "--data-dir",
                str(workdir / "data"),
            ],
            env,
            cwd=REPO,
        )
        demo = Demo(proc, f"http://127.0.0.1:{chat_port}/", port, workdir / "data")
        wait_until(
            lambda: demo.health()["bot"]["status"] == "running", timeout=60, what="the demo bot"
        )
        yield demo
    finally:
        pool.close()


@pytest.fixture
def browser() -> Iterator[Chromium]:
    with Chromium(width=1000, height=800) as chromium:
        yield chromium


def only_local(requests: list[str], origin: str) -> list[str]:
    return [url for url in requests if not url.startswith(origin)]


def test_the_chat_page_sends_start_and_shows_the_greeting(demo, browser):
    browser.open(demo.chat_url)
    browser.type_and_enter("#text", "/start")
    seen = browser.wait_for_text("Hello, Ada")
    assert "/start" in seen
    browser.type_and_enter("#text", "/remember buy oat milk")
    browser.wait_for_text("Noted as #1")
    browser.type_and_enter("#text", "/search oat")
    seen = browser.wait_for_text("Best matches for “oat”")
    assert seen.count("buy oat milk") >= 2, "the note, and the search that found it"
    assert browser.violations() == []
    assert browser.console_errors == []
    assert only_local(browser.requests, demo.chat_url) == []


def test_the_status_page_shows_health_backups_charts_and_events(demo, browser, tmp_path):
    wait_until(lambda: demo.health()["backups"]["tiers"]["hourly"], timeout=30, what="a backup")
    origin = f"http://127.0.0.1:{demo.port}/"
    browser.open(origin)
    seen = browser.visible_text()
    assert seen.splitlines()[0] == "ErixCast"
    assert "HEALTHY" in seen  # the badge, as the eye reads it (CSS upper case)
    for heading in ("Bot", "Database", "Backups", "Checks", "Recent events"):
        assert heading in seen.splitlines(), heading
    assert "hourly" in seen and "bot launched" in seen
    assert "running" in seen
    charts = browser.evaluate(
        "[...document.querySelectorAll('svg.chart')].map(s => {"
        " const r = s.getBoundingClientRect();"
        " return [s.querySelector('title').textContent, r.width, r.height,"
        "  s.querySelectorAll('polyline, circle').length]; })"
    )
    assert [c[0] for c in charts] == ["Database size", "Backup duration"]
    assert all(width > 300 and height > 100 for _, width, height, _ in charts)
    assert all(marks >= 1 for *_, marks in charts), "each chart draws the history it has"
    assert browser.violations() == [] and browser.console_errors == []
    assert only_local(browser.requests, origin) == [], "no outside asset"
    shot = browser.screenshot(tmp_path / "status.png")
    assert shot.stat().st_size > 20_000


def test_live_metrics_pass_promtool_check_metrics(demo):
    promtool = shutil.which("promtool")
    assert promtool, "promtool not found: apt-get install prometheus (.ci/run does it for CI)"
    wait_until(lambda: demo.health()["backups"]["tiers"]["hourly"], timeout=30, what="a backup")
    status, text = http_get(f"http://127.0.0.1:{demo.port}/metrics")
    assert status == 200
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.strip() == "" and checked.stderr.strip() == "", "no lint problem"
    for series in (
        'erixcast_backup_last_success_timestamp_seconds{tier="hourly"}',
        'erixcast_backup_last_duration_seconds{tier="hourly"}',
        'erixcast_backup_failures_total{tier="hourly"} 0.0',
        'erixcast_backup_interval_seconds{tier="hourly"} 300.0',
        "erixcast_integrity_check_last_timestamp_seconds",
        'erixcast_recoveries_total{outcome="fresh"} 0.0',
        "erixcast_recovery_rows_salvaged_total 0.0",
        "erixcast_offsite_enabled 0.0",
        "erixcast_bot_restarts_total 0.0",
        "erixcast_bot_up 1.0",
        "erixcast_bot_heartbeat_age_seconds",
        "erixcast_build_info{",
    ):
        assert series in text, series


def test_ctrl_c_stops_the_whole_demo(demo):
    family = [psutil.Process(demo.proc.pid), *demo.proc.descendants()]
    names = " ".join(" ".join(p.cmdline()) for p in family)
    assert "supervisord" in names and "watchdog" in names and "-m bot" in names
    demo.proc.popen.send_signal(signal.SIGINT)
    assert demo.proc.wait(40) == 0
    _gone, alive = psutil.wait_procs(family, timeout=10)
    assert not alive, [p.cmdline() for p in alive]
