"""How every command finds the running watchdog (``watchdog/cli/remote.py``): its address file
first, the instance lock when that does not answer; a secret that is not this run's, or an
address nobody answers while the lock is held, is one clear line and nothing is done."""

from __future__ import annotations

import json

import pytest

from conf.layout import DataLayout
from tests.helpers import free_port
from watchdog.data.fs import InstanceLock
from watchdog.web.admin_endpoint import AdminEndpoint

LIGHT_DATA = {"watchdog.data.fs"}
"""The one module of the data layer a command asking the watchdog loads (the instance lock)."""


def manual_backups(cli) -> int:
    return len(list((cli.data / "backups" / "manual").glob("*.json")))


def test_a_wrong_admin_secret_is_one_clear_line(cli, stack):
    real = json.loads(stack.admin_file.read_text())
    AdminEndpoint(real["url"], "not-the-secret").save(stack.admin_file)
    before = manual_backups(cli)
    for command in (["backup"], ["verify"], ["drill"], ["list"], ["status"], ["restore", "--yes"]):
        done = cli(*command)
        assert done.returncode != 0, command
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, (command, done.stderr)
        assert "refused the admin secret" in lines[0] and "Traceback" not in done.stderr
        assert "not-the-secret" not in done.stderr
    assert manual_backups(cli) == before
    assert not (cli.data / "quarantine").exists()


@pytest.fixture
def held(cli):
    """DATA_DIR's lock held (a watchdog that does not answer), its address file dead."""
    layout = DataLayout(cli.data, cli.database)
    layout.ensure()
    lock = InstanceLock(layout.lock_file)
    lock.acquire()
    AdminEndpoint(f"http://127.0.0.1:{free_port()}", "s3cret").save(layout.admin_file)
    try:
        yield layout
    finally:
        lock.release()


@pytest.mark.parametrize("command", [["backup"], ["verify"], ["drill"], ["list"]])
def test_a_dead_address_with_the_lock_held_is_one_clear_line(cli, held, command):
    done = cli(*command)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "holds" in lines[0] and "does not answer" in lines[0]
    assert manual_backups(cli) == 0


def test_a_dead_address_left_by_a_killed_watchdog_does_not_stop_the_work(cli):
    layout = DataLayout(cli.data, cli.database)
    layout.ensure()
    AdminEndpoint(f"http://127.0.0.1:{free_port()}", "s3cret").save(layout.admin_file)
    done = cli("backup")  # the lock is free: no watchdog runs, the command does it
    assert done.returncode == 0, done.stderr
    assert manual_backups(cli) == 1
    status = cli("status")
    assert status.returncode == 3 and len(status.stderr.strip().splitlines()) == 1


def test_the_client_path_stays_small(cli, stack):
    """Each command the running watchdog does loads no framework, no data layer, no urllib."""
    from tests.cli.conftest import HEAVY_MODULES, traced

    for command in (["backup"], ["status"], ["list"], ["verify"], ["drill"]):
        done = traced(cli, *command)
        assert done.returncode in (0, 1), (command, done.stderr)  # status: 1 is "degraded"
        assert done.stdout.strip(), command
        heavy = sorted(
            m for m in done.modules if m in HEAVY_MODULES or m.split(".")[0] in HEAVY_MODULES
        )
        data = sorted(
            m
            for m in done.modules
            if m.startswith(("watchdog.runtime", "watchdog.offsite", "watchdog.data."))
            and m not in LIGHT_DATA
        )
        assert heavy == [] and data == [], (command, heavy, data)


def test_the_admin_api_checks_every_job_body(cli, stack):
    from watchdog.cli.remote import Refused, Remote

    remote = Remote(AdminEndpoint.load(stack.admin_file), str(stack.admin_file))
    for action, body, said in (
        ("backup", {"tier": "yearly"}, "tier: one of"),
        ("backup", {"reason": 7}, "reason: a short printable text"),
        ("verify", {"id": "x", "all": True}, "not both"),
        ("verify", {"all": "yes"}, "all: true or false"),
        ("restore", {"id": "latest\n"}, "id: a short printable text"),
        ("nothing", {}, "no such action"),
    ):
        with pytest.raises(Refused, match=said):
            remote.ask("POST", f"/jobs/{action}", body)
    with pytest.raises(Refused, match="no such job"):
        remote.ask("GET", "/jobs/backup-999")
    with pytest.raises(Refused, match="tier: one of"):
        remote.ask("GET", "/catalogue?tier=yearly")
    assert manual_backups(cli) == 0
