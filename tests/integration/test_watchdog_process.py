"""``python -m watchdog run`` as a real process, with a real bot against the fake Bot API."""

from __future__ import annotations

import asyncio
import os
import sys
import time

import psutil
import pytest

from conf.exitcodes import EXIT_BAD_SETTINGS, EXIT_REFUSED
from conf.layout import DataLayout
from conf.settings import load_settings
from tests.helpers import base_env, free_port, get_json, tmpfs, wait_until
from watchdog.runtime.service import WatchdogService

pytestmark = pytest.mark.integration
WATCHDOG = [sys.executable, "-m", "watchdog", "run"]
BOT = [sys.executable, "-m", "bot"]


def health(port: int) -> dict:
    return get_json(f"http://127.0.0.1:{port}/health")[1]


def bot_children(watchdog_pid: int) -> list[psutil.Process]:
    try:
        children = psutil.Process(watchdog_pid).children()
    except psutil.NoSuchProcess:
        return []
    return [child for child in children if "bot" in child.cmdline()]


@pytest.mark.parametrize("program", [WATCHDOG, BOT], ids=["watchdog", "bot"])
@pytest.mark.parametrize(
    ("variable", "value"),
    [("PORT", "eighty"), ("BACKUP_HOURLY_EVERY", "hourly"), ("ADMIN_IDS", "1,two")],
)
def test_bad_setting_exits_2_with_one_line_naming_it(processes, tmp_path, program, variable, value):
    env = base_env(tmp_path / "data", free_port(), **{variable: value})
    proc = processes.start("bad", program, env)
    assert proc.wait(30) == EXIT_BAD_SETTINGS
    output = proc.output()
    assert variable in output
    assert "Traceback" not in output
    assert len(output.strip().splitlines()) == 1


def test_no_token_is_degraded_without_a_restart_loop(processes, tmp_path):
    port = free_port()
    proc = processes.start("watchdog", WATCHDOG, base_env(tmp_path / "data", port))
    doc = wait_until(
        lambda: (d := health(port))["bot"]["status"] == "not_configured" and d,
        what="not_configured",
    )
    assert doc["status"] == "degraded"
    assert "TELEGRAM_BOT_TOKEN" in doc["checks"]["bot"]["detail"]
    time.sleep(3)  # long enough for several relaunches, were there a loop
    doc = health(port)
    assert doc["bot"]["restarts"] == 0
    assert doc["bot"]["status"] == "not_configured"
    assert bot_children(proc.pid) == []
    assert "TELEGRAM_BOT_TOKEN is not set" in proc.output()


def test_a_second_watchdog_on_the_same_data_dir_refuses(processes, tmp_path, fake_api):
    data = tmp_path / "data"
    port = free_port()
    env = base_env(
        data, port, TELEGRAM_BOT_TOKEN=fake_api.token, TELEGRAM_API_URL=fake_api.base_url
    )
    first = processes.start("first", WATCHDOG, env)
    wait_until(lambda: health(port)["bot"]["status"] == "running", what="first bot running")
    second = processes.start("second", WATCHDOG, {**env, "PORT": str(free_port())})
    assert second.wait(30) == EXIT_REFUSED
    assert "another watchdog" in second.output()
    assert f"pid {first.pid}" in second.output()
    assert first.popen.poll() is None
    assert len(bot_children(first.pid)) == 1


def test_on_render_it_refuses_a_data_dir_on_the_container_filesystem(processes, tmp_path):
    env = base_env(tmp_path / "data", free_port(), RENDER="true")
    proc = processes.start("render", WATCHDOG, env)
    assert proc.wait(30) == EXIT_REFUSED
    output = proc.output()
    assert "DATA_DIR" in output
    assert "wiped at every deploy" in output
    assert not (tmp_path / "data").exists(), "nothing may be written before refusing"


def test_on_render_it_runs_on_a_mounted_disk(processes, tmp_path):
    with tmpfs(tmp_path / "disk", "16m") as disk:
        try:
            port = free_port()
            processes.start("render", WATCHDOG, base_env(disk / "data", port, RENDER="true"))
            # /health answers before the guard's first look at the disk: wait for that look.
            doc = wait_until(
                lambda: (d := health(port))["storage"]["persistent_disk"] and d,
                timeout=60,
                what="the mounted disk seen as persistent",
            )
            assert doc["storage"]["persistent_disk"] is True
        finally:
            processes.close()


def test_a_silent_bot_is_restarted_and_comes_back(processes, tmp_path, fake_api):
    port = free_port()
    env = base_env(
        tmp_path / "data",
        port,
        TELEGRAM_BOT_TOKEN=fake_api.token,
        TELEGRAM_API_URL=fake_api.base_url,
        BOT_HEARTBEAT_TIMEOUT="3",
        BOT_STOP_TIMEOUT="3",
    )
    processes.start("watchdog", WATCHDOG, env)
    first = wait_until(
        lambda: (d := health(port))["bot"]["status"] == "running" and d["bot"]["pid"]
    )
    fake_api.set_get_updates_mode("hang")
    second = wait_until(
        lambda: (pid := health(port)["bot"]["pid"]) not in (None, first) and pid,
        timeout=30,
        what="a new bot after the old one went silent",
    )
    assert not psutil.pid_exists(first) or psutil.Process(first).status() == psutil.STATUS_ZOMBIE
    fake_api.set_get_updates_mode("normal")
    wait_until(lambda: health(port)["bot"]["status"] == "running", timeout=30)
    assert health(port)["bot"]["pid"] not in (None, first)
    assert second != first
    fake_api.send_text(501, "/start", first_name="Silvia")
    assert "Silvia" in fake_api.wait_for_sent(501, timeout=15)["text"]


def test_a_corrupt_database_without_backups_is_kept_and_the_bot_starts_fresh_loudly(
    processes, tmp_path, fake_api
):
    """Never launched on the damaged file, never deleting it: quarantined, fresh start, degraded.
    (Corruption found while the bot runs is tested in test_recovery.py.)"""
    data = tmp_path / "data"
    data.mkdir()
    damaged = b"SQLite format 3\x00" + b"\xff" * 8000
    (data / "erixcast.db").write_bytes(damaged)
    port = free_port()
    env = base_env(
        data, port, TELEGRAM_BOT_TOKEN=fake_api.token, TELEGRAM_API_URL=fake_api.base_url
    )
    processes.start("watchdog", WATCHDOG, env)
    doc = wait_until(
        lambda: (d := health(port))["bot"]["status"] == "running" and d["recovery"]["count"] and d,
        timeout=30,
    )
    assert doc["status"] == "degraded"
    assert "NO USABLE BACKUP" in doc["checks"]["recovery"]["detail"]
    kept = list((data / "quarantine").glob("*/erixcast.db"))
    assert len(kept) == 1 and kept[0].read_bytes() == damaged
    fake_api.send_text(31, "/start", first_name="Fresh")
    assert "Fresh" in fake_api.wait_for_sent(31, timeout=15)["text"]


def test_a_crash_loop_is_visible_in_health(tmp_path, monkeypatch):
    monkeypatch.setenv("ENV_FILE", os.devnull)
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "1:x")
    settings = load_settings()
    layout = DataLayout.from_settings(settings)
    layout.ensure()
    crashing_bot = [sys.executable, "-c", "raise SystemExit(1)"]
    service = WatchdogService(settings, layout, bot_argv=crashing_bot)

    async def scenario() -> dict:
        runner = asyncio.create_task(service.run())
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                report = service.health()
                if report.document["bot"]["crash_loop"]:
                    return report.document
                await asyncio.sleep(0.1)
            raise AssertionError(f"no crash loop reported: {service.health().document['bot']}")
        finally:
            service.request_stop()
            await asyncio.wait_for(runner, 20)

    doc = asyncio.run(scenario())
    assert doc["status"] == "unhealthy"
    assert doc["bot"]["last_exit_code"] == 1
    assert doc["bot"]["consecutive_failures"] >= 3
    assert doc["bot"]["restarts"] >= 2
