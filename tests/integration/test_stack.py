"""The whole stack as Render runs it: real supervisord → watchdog → bot, against the fake Bot API."""

from __future__ import annotations

import signal
import sqlite3
import time

import psutil
import pytest

from tests.helpers import REPO, VENV_BIN, base_env, free_port, get_json, wait_until

pytestmark = pytest.mark.integration
SUPERVISORD = [str(VENV_BIN / "supervisord"), "-c", str(REPO / "supervisord.conf")]


def health(port: int) -> dict:
    return get_json(f"http://127.0.0.1:{port}/health")[1]


def users(database) -> dict[int, int]:
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
        return dict(connection.execute("SELECT id, message_count FROM users"))


@pytest.fixture
def stack(processes, tmp_path, fake_api):
    port = free_port()
    data = tmp_path / "data"
    env = base_env(
        data, port, TELEGRAM_BOT_TOKEN=fake_api.token, TELEGRAM_API_URL=fake_api.base_url
    )
    supervisord = processes.start("supervisord", SUPERVISORD, env, cwd=tmp_path)
    wait_until(lambda: health(port)["bot"]["status"] == "running", timeout=30, what="bot running")
    return supervisord, port, data


def test_the_stack_answers_remembers_and_survives_a_killed_bot(stack, fake_api):
    _supervisord, port, data = stack
    status, doc = get_json(f"http://127.0.0.1:{port}/health")
    assert status == 200
    assert doc["status"] in ("healthy", "degraded")
    for field in ("type", "size_mb", "integrity", "last_backup", "records"):
        assert field in doc["database"]
    for field in ("disk_usage_percent", "persistent_disk"):
        assert field in doc["storage"]
    assert {"bot", "backups", "checks"} <= set(doc)

    fake_api.send_text(1001, "/start", first_name="Ann")
    assert "Ann" in fake_api.wait_for_sent(1001, timeout=15)["text"]
    database = data / "erixcast.db"
    assert wait_until(lambda: users(database).get(1001) == 1, what="Ann's row")

    old_bot = health(port)["bot"]["pid"]
    watchdog = health(port)  # the watchdog is supervisord's child, the bot the watchdog's
    psutil.Process(old_bot).send_signal(signal.SIGKILL)
    new_bot = wait_until(
        lambda: (pid := health(port)["bot"]["pid"]) not in (None, old_bot) and pid,
        timeout=10,
        what="a new bot after kill -9",
    )
    assert new_bot != old_bot
    assert users(database)[1001] == 1, "the row survived the kill"
    wait_until(lambda: health(port)["bot"]["status"] == "running", timeout=20)
    sent_before = len(fake_api.sent(1001))
    fake_api.send_text(1001, "/start", first_name="Ann")
    reply = fake_api.wait_for_sent(1001, timeout=15, after=sent_before)
    assert "2" in reply["text"]
    assert watchdog["bot"]["restarts"] == 0
    assert health(port)["bot"]["restarts"] == 1


def test_sigterm_to_supervisord_stops_everything_within_the_budget(stack):
    supervisord, _port, _ = stack
    tree = [
        psutil.Process(supervisord.pid),
        *psutil.Process(supervisord.pid).children(recursive=True),
    ]
    names = " ".join(" ".join(p.cmdline()) for p in tree)
    assert "watchdog" in names and "-m bot" in names
    started = time.monotonic()
    supervisord.popen.send_signal(signal.SIGTERM)
    assert supervisord.wait(30) == 0
    _gone, alive = psutil.wait_procs(tree, timeout=max(1, 30 - (time.monotonic() - started)))
    assert not alive, f"left running: {[p.cmdline() for p in alive]}"
    assert time.monotonic() - started < 30
    assert "bot stopped with exit code 0" in supervisord.output()


def test_a_watchdog_that_cannot_start_ends_supervisord_with_a_failure(processes, tmp_path):
    env = base_env(tmp_path / "data", free_port(), PORT="not-a-port")
    supervisord = processes.start("supervisord", SUPERVISORD, env, cwd=tmp_path)
    code = supervisord.wait(60)
    assert code != 0
    output = supervisord.output()
    assert "PORT" in output
    assert "FATAL" in output or "fatal_guard" in output


def test_the_token_appears_in_no_log(stack, fake_api):
    supervisord, _, data = stack
    fake_api.send_text(1002, "/start", first_name="Bo")
    fake_api.wait_for_sent(1002, timeout=15)
    supervisord.popen.send_signal(signal.SIGTERM)
    supervisord.wait(30)
    texts = [supervisord.output()] + [log.read_text() for log in (data / "logs").glob("*.log*")]
    assert any("bot launched" in text for text in texts)
    for text in texts:
        assert fake_api.token not in text
        assert fake_api.token.split(":", 1)[1] not in text


def test_make_run_brings_up_a_stack_that_answers(processes, tmp_path, fake_api):
    port = free_port()
    env = base_env(
        tmp_path / "data",
        port,
        TELEGRAM_BOT_TOKEN=fake_api.token,
        TELEGRAM_API_URL=fake_api.base_url,
    )
    make = processes.start("make-run", ["make", "-C", str(REPO), "run"], env)
    doc = wait_until(lambda: get_json(f"http://127.0.0.1:{port}/health")[1], timeout=60)
    assert doc["database"]["type"] == "sqlite"
    supervisord = next(p for p in make.descendants() if "supervisord" in " ".join(p.cmdline()))
    supervisord.terminate()
    assert make.wait(30) == 0
