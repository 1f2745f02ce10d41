"""The running watchdog's own backups: scheduled tiers, deploy, restart and shutdown snapshots."""

from __future__ import annotations

import signal
import sqlite3
import sys
from pathlib import Path

import psutil
import pytest

from conf.layout import DataLayout
from tests import dbgen
from tests.helpers import base_env, free_port, get_json, wait_until
from watchdog.data.catalogue import Catalogue

pytestmark = pytest.mark.integration
WATCHDOG = [sys.executable, "-m", "watchdog", "run"]


def health(port: int) -> dict:
    return get_json(f"http://127.0.0.1:{port}/health")[1]


def tiers(data) -> dict[str, int]:
    counts: dict[str, int] = {}
    for backup in Catalogue(DataLayout(data, data / "erixcast.db")).scan():
        counts[backup.tier] = counts.get(backup.tier, 0) + 1
    return counts


def start_and_stop(processes, data, **env) -> dict:
    port = free_port()
    proc = processes.start("watchdog", WATCHDOG, base_env(data, port, **env))
    doc = wait_until(
        lambda: (
            (d := health(port))["bot"]["status"] == "not_configured"
            and all(d["backups"]["tiers"][t] for t in ("hourly", "daily", "weekly"))
            and not Catalogue(DataLayout(data, data / "erixcast.db")).staged()  # deploy proven
            and d
        ),
        timeout=30,
        what="preflight, the deploy copy's proof and scheduled backups done",
    )
    proc.popen.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    return doc


def test_scheduled_tiers_at_start_and_a_deploy_backup_only_when_the_commit_changes(
    processes, tmp_path
):
    data = tmp_path / "data"
    data.mkdir()
    dbgen.create(data / "erixcast.db", 300_000)

    doc = start_and_stop(processes, data, RENDER_GIT_COMMIT="aaaa1111")
    assert doc["database"]["last_backup"] is not None
    assert tiers(data) == {"deploy": 1, "hourly": 1, "daily": 1, "weekly": 1}

    start_and_stop(processes, data, RENDER_GIT_COMMIT="aaaa1111")
    assert tiers(data)["deploy"] == 1, "same commit: no new deploy backup"
    assert tiers(data)["hourly"] == 1, "an hour has not passed: no new hourly backup"

    start_and_stop(processes, data, RENDER_GIT_COMMIT="bbbb2222")
    assert tiers(data)["deploy"] == 2
    deploy = [
        b for b in Catalogue(DataLayout(data, data / "erixcast.db")).scan() if b.tier == "deploy"
    ]
    assert "aaaa1111" in deploy[-1].manifest.reason and "bbbb2222" in deploy[-1].manifest.reason
    assert deploy[-1].manifest.app_version.startswith("bbbb2222")


def users_in(backup_path) -> set[int]:
    with sqlite3.connect(f"file:{backup_path}?mode=ro&immutable=1", uri=True) as connection:
        return {row[0] for row in connection.execute("SELECT id FROM users")}


def users_in_live(database) -> set[int]:
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5) as connection:
        return {row[0] for row in connection.execute("SELECT id FROM users")}


def outbox_in_live(database: Path) -> list:
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5) as connection:
        return list(connection.execute("SELECT id FROM outbox"))


def test_restart_backup_before_relaunch_deduplicated_and_a_shutdown_backup(
    processes, tmp_path, fake_api
):
    data = tmp_path / "data"
    port = free_port()
    env = base_env(
        data, port, TELEGRAM_BOT_TOKEN=fake_api.token, TELEGRAM_API_URL=fake_api.base_url
    )
    proc = processes.start("watchdog", WATCHDOG, env)
    wait_until(lambda: health(port)["bot"]["status"] == "running", timeout=30)
    fake_api.send_text(4242, "/start", first_name="Rita")
    fake_api.wait_for_sent(4242, timeout=15)
    layout = DataLayout(data, data / "erixcast.db")
    wait_until(lambda: 4242 in users_in_live(layout.database), what="Rita's row committed")
    # Her reply sent and its outbox row gone: from here on the bot has nothing left to write.
    wait_until(lambda: not outbox_in_live(layout.database), what="the outbox emptied")

    def restart_backups() -> list:
        return [b for b in Catalogue(layout).scan() if b.tier == "restart"]

    first_bot = health(port)["bot"]["pid"]
    psutil.Process(first_bot).kill()
    wait_until(lambda: len(restart_backups()) == 1, timeout=20, what="a restart backup")
    assert 4242 in users_in(restart_backups()[0].data_path)
    wait_until(lambda: health(port)["bot"]["status"] == "running", timeout=30)

    second_bot = health(port)["bot"]["pid"]
    assert second_bot != first_bot
    psutil.Process(second_bot).kill()
    wait_until(lambda: health(port)["bot"]["pid"] not in (None, second_bot), timeout=20)
    assert len(restart_backups()) == 1, "nothing changed: the crash must not add a backup"
    wait_until(lambda: health(port)["bot"]["status"] == "running", timeout=30)

    fake_api.send_text(4343, "/start", first_name="Sam")
    fake_api.wait_for_sent(4343, timeout=15)
    wait_until(lambda: 4343 in users_in_live(layout.database), what="Sam's row committed")
    proc.popen.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    shutdown = [b for b in Catalogue(layout).scan() if b.tier == "shutdown"]
    assert len(shutdown) == 1
    assert {4242, 4343} <= users_in(shutdown[0].data_path)
