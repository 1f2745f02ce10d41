"""The scale-out variant with real processes on a real PostgreSQL server (``tests/pg.py``):
several watchdogs on one database, of which exactly one backs up (the holder of the advisory
lock) and another takes over when it is killed; and Telegram's POSTs reaching the bot in
webhook mode through the watchdog's public port, answered 200 only once committed, a wrong
secret still refused by the bot, a bot that is down answered 502 and nothing lost."""

from __future__ import annotations

import json
import re
import signal
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psycopg
import pytest

from tests.fakes.telegram_api import FakeTelegramAPI
from tests.helpers import ProcessPool, base_env, free_port, get_json, http_get, wait_until
from tests.integration.webhookrun import SECRET, UNLIMITED, message_update
from tests.pg import PostgresServer

pytestmark = pytest.mark.integration
pytest.importorskip("bot.storage.server")

WATCHDOG = [sys.executable, "-m", "watchdog", "run"]
START = 120.0


def health(port: int) -> dict:
    return get_json(f"http://127.0.0.1:{port}/health", timeout=5)[1]


def leader_of(port: int) -> dict:
    return health(port)["backups"]["leader"]


def dumps(root: Path) -> list[Path]:
    return sorted((root / "data" / "backups").glob("*/*.pgdump"))


def test_two_watchdogs_on_one_database_one_backs_up_and_the_other_takes_over(
    processes: ProcessPool, tmp_path: Path, postgres: PostgresServer
) -> None:
    url = postgres.url(postgres.create_database())
    ports = {name: free_port() for name in ("a", "b")}
    procs = {
        name: processes.start(
            f"watchdog-{name}",
            WATCHDOG,
            base_env(tmp_path / name / "data", port, DATABASE_URL=url),
        )
        for name, port in ports.items()
    }

    def roles() -> dict[str, str]:
        return {name: leader_of(port)["role"] for name, port in ports.items()}

    wait_until(lambda: sorted(roles().values()) == ["follower", "leader"], START, what="one leader")
    first = next(name for name, role in roles().items() if role == "leader")
    other = "b" if first == "a" else "a"
    # the leader takes the deploy dump and every scheduled tier (all due on a new catalogue)
    wait_until(
        lambda: (
            {"deploy", "hourly", "daily", "weekly"}
            <= {t for t, s in health(ports[first])["backups"]["tiers"].items() if s}
        ),
        START,
        what="the leader's deploy and scheduled dumps",
    )
    follower = health(ports[other])
    assert dumps(tmp_path / other) == [], "a follower took a dump"
    assert follower["backups"]["count"] == 0 and follower["backups"]["overdue"] == []
    check = follower["checks"]["backups"]
    assert check["status"] == "healthy" and "taken by another instance" in check["detail"]
    assert f"pid {procs[first].pid}" in (follower["backups"]["leader"]["holder"] or "")
    assert follower["backups"]["leader"]["backs_up"] is False
    leader_metrics = http_get(f"http://127.0.0.1:{ports[first]}/metrics")[1]
    follower_metrics = http_get(f"http://127.0.0.1:{ports[other]}/metrics")[1]
    assert "erixcast_backup_leader 1.0" in leader_metrics
    assert "erixcast_backup_leader 0.0" in follower_metrics

    killed_at = time.monotonic()
    procs[first].kill_tree()  # kill -9: its session, and the lock with it, end with it
    wait_until(lambda: roles_of(ports[other]) == "leader", 60, what="the takeover")
    took = time.monotonic() - killed_at
    print(f"takeover after kill -9 of the leader: {took:.1f} s")
    wait_until(
        lambda: (
            {"deploy", "hourly"}
            <= {t for t, s in health(ports[other])["backups"]["tiers"].items() if s}
        ),
        START,
        what="the new leader's deploy (owed since it started) and scheduled dumps",
    )
    assert dumps(tmp_path / other), "the new leader's dumps"
    events = get_json(f"http://127.0.0.1:{ports[other]}/stats")[1]["events"]
    said = [e["message"] for e in events if e["kind"] == "leader"]
    assert any("another instance takes the backups" in m for m in said)
    assert any("now takes the backups" in m for m in said)


def roles_of(port: int) -> str:
    return str(leader_of(port)["role"])


# ------------------------------------------------------------------- webhooks through PORT


def webhook_env(
    root: Path, port: int, fake: FakeTelegramAPI, database: str, token: bool = True
) -> dict[str, str]:
    extra = {
        "DATABASE_URL": database,
        "TELEGRAM_WEBHOOK_URL": f"http://127.0.0.1:{port}/telegram/hook-9c1e",
        "TELEGRAM_WEBHOOK_SECRET": SECRET,
        "WEBHOOK_HOST": "127.0.0.1",
        "WEBHOOK_PORT": str(free_port()),
        "TELEGRAM_API_URL": fake.base_url,
        **UNLIMITED,
    }
    if token:
        extra["TELEGRAM_BOT_TOKEN"] = fake.token
    return base_env(root / "data", port, **extra)


def post(url: str, body: dict, secret: str | None = SECRET) -> tuple[int, str]:
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=90) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def notes(database: str) -> list[str]:
    with psycopg.connect(database) as connection:
        return [str(text) for (text,) in connection.execute("SELECT text FROM notes")]


def test_telegram_posts_through_the_watchdog_port_are_answered_after_the_commit(
    processes: ProcessPool, tmp_path: Path, postgres: PostgresServer, fake_api: FakeTelegramAPI
) -> None:
    database = postgres.url(postgres.create_database())
    port = free_port()
    env = webhook_env(tmp_path, port, fake_api, database)
    hook = env["TELEGRAM_WEBHOOK_URL"]
    proc = processes.start("watchdog", WATCHDOG, env)
    wait_until(lambda: fake_api.webhook.url == hook, START, what="the bot's setWebhook")
    wait_until(
        lambda: post(hook, message_update(10_000, 77, "/start"))[0] == 200,
        START,
        what="the bot answering through the watchdog",
    )
    for n in range(1, 6):
        text = f"through the proxy {n}"
        status, _ = post(hook, message_update(10_000 + n, 77, f"/remember {text}"))
        assert status == 200
        assert notes(database).count(text) == 1, "answered 200 before the row was committed"
    # Telegram's own deliveries (the fake posts to the registered URL: the watchdog's port)
    texts = {fake_api.send_text(78, f"/remember burst {n}"): f"burst {n}" for n in range(20)}
    wait_until(lambda: set(texts) <= set(fake_api.webhook.acknowledged()), START, what="the burst")
    stored = notes(database)
    assert all(stored.count(text) == 1 for text in texts.values())
    # a wrong secret reaches the bot and the bot refuses it; no secret is refused at once
    wrong = message_update(10_100, 77, "/remember never stored")
    assert post(hook, wrong, secret="wrong-secret_0000")[0] == 403
    assert post(hook, wrong, secret=None)[0] == 401
    assert "never stored" not in " ".join(notes(database))
    wait_until(lambda: "refused a webhook request" in proc.output(), 30, what="the bot's refusal")
    assert http_get(hook)[0] == 405
    status, document = get_json(f"http://127.0.0.1:{port}/health")
    assert status == 200 and document["bot"]["status"] == "running"
    output = proc.output()
    assert SECRET not in output and "wrong-secret_0000" not in output


def test_a_bot_that_is_down_is_answered_502_and_nothing_is_lost(
    processes: ProcessPool, tmp_path: Path, postgres: PostgresServer, fake_api: FakeTelegramAPI
) -> None:
    database = postgres.url(postgres.create_database())
    port = free_port()
    env = webhook_env(tmp_path, port, fake_api, database, token=False)
    hook = env["TELEGRAM_WEBHOOK_URL"]
    # the watchdog up, no bot behind it (no token): Telegram's deliveries meet the proxy alone
    down = processes.start("watchdog-down", WATCHDOG, env)
    wait_until(lambda: health(port)["bot"]["status"] == "not_configured", START, what="up")
    fake_api.webhook.set_webhook({"url": hook, "secret_token": SECRET})
    texts = {fake_api.send_text(79, f"/remember kept {n}"): f"kept {n}" for n in range(8)}
    wait_until(
        lambda: (
            {a["update_id"] for a in fake_api.webhook.attempts() if a["status"] == 502}
            == set(texts)
        ),
        60,
        what="each update answered 502 while the bot is down",
    )
    assert not fake_api.webhook.acknowledged()
    down.popen.send_signal(signal.SIGTERM)
    assert down.wait(60) == 0
    # the same service with the bot: every update Telegram kept redelivering is applied once
    env["TELEGRAM_BOT_TOKEN"] = fake_api.token
    processes.start("watchdog-up", WATCHDOG, env)
    wait_until(
        lambda: set(texts) <= set(fake_api.webhook.acknowledged()), START, what="redeliveries"
    )
    stored = notes(database)
    assert sorted(t for t in stored if re.fullmatch(r"kept \d", t)) == sorted(texts.values())
