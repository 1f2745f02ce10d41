import signal
import sys

from tests.helpers import get_json, wait_until


def test_status_summarises_the_running_watchdog(cli, processes):
    assert cli("status").returncode == 3  # nothing answering yet
    proc = processes.start("watchdog", [sys.executable, "-m", "watchdog", "run"], cli.env)
    wait_until(
        lambda: (
            get_json(f"http://127.0.0.1:{cli.port}/health")[1]["bot"]["status"] == "not_configured"
        ),
        timeout=60,  # a start on a loaded machine checks the database first
        what="the watchdog serving",
    )
    done = cli("status")
    assert done.returncode == 1  # degraded: no token
    assert done.stdout.startswith("ErixCast is degraded")
    assert "bot       not configured" in done.stdout and "None" not in done.stdout
    assert "TELEGRAM_BOT_TOKEN" in done.stdout
    assert '"status": "degraded"' in cli("status", "--json").stdout
    proc.popen.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0


def test_a_cli_backup_while_the_watchdog_runs(cli, processes):
    proc = processes.start("watchdog", [sys.executable, "-m", "watchdog", "run"], cli.env)
    wait_until(
        lambda: get_json(f"http://127.0.0.1:{cli.port}/health")[1]["backups"]["tiers"]["hourly"]
    )
    assert cli("backup").returncode == 0
    assert cli("verify", "--all").returncode == 0
    proc.popen.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0


def test_status_asks_the_watchdog_of_this_data_dir_and_sees_the_rows(cli, processes):
    from tests.cli.conftest import Stack, traced

    cli.env["STATS_TOKEN"] = "hidden-from-anonymous"
    stack = Stack(cli, processes)
    public = get_json(f"http://127.0.0.1:{cli.port}/health")[1]
    assert public["database"]["records"] is None  # the anonymous view hides the counts
    done = traced(cli, "status")
    assert done.returncode == 1, done.stderr  # degraded: no token
    assert done.touched_the_data() == []
    assert "rows hidden" not in done.stdout and " rows, checked" in done.stdout
    stack.stop()
    gone = cli("status")
    assert gone.returncode == 3 and "the stack is not running" in gone.stderr
    assert len(gone.stderr.strip().splitlines()) == 1
