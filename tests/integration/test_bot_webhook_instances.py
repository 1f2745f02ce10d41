"""Two bot instances in webhook mode on one PostgreSQL database, behind the fake Bot API's load
balancer: every update delivered to both at once is applied once; a kill -9 of one of them
mid-burst loses no update answered 200 (the other takes the redeliveries)."""

from __future__ import annotations

import re
from pathlib import Path

import psycopg
import pytest

from tests.fakes.telegram_api import FakeTelegramAPI
from tests.helpers import ProcessPool, free_port, wait_until
from tests.integration.webhookrun import WebhookBot
from tests.pg import PostgresServer

pytestmark = pytest.mark.integration

# The bot's storage on PostgreSQL is built on the pgstore branch; these run once it is merged.
pytest.importorskip("bot.storage.server")


@pytest.fixture
def database(postgres: PostgresServer) -> str:
    return postgres.url(postgres.create_database())


def instances(
    processes: ProcessPool, fake: FakeTelegramAPI, root: Path, database: str, n: int = 2
) -> list[WebhookBot]:
    public = f"http://127.0.0.1:{free_port()}/telegram"  # the load balancer's address
    return [
        WebhookBot(processes, fake, root / f"i{k}", public_url=public, DATABASE_URL=database)
        for k in range(n)
    ]


def rows(database: str, sql: str) -> list[tuple]:
    with psycopg.connect(database) as conn:
        return list(conn.execute(sql))


def burst(fake: FakeTelegramAPI, users: range, per_user: int) -> dict[int, str]:
    texts = {}
    for n in range(per_user):
        for user in users:
            text = f"note {n} of {user}"
            texts[fake.send_text(user, f"/remember {text}")] = text
    return texts


def test_an_update_delivered_to_two_instances_at_once_is_applied_once(
    processes: ProcessPool, fake_api: FakeTelegramAPI, tmp_path: Path, database: str
) -> None:
    first, second = instances(processes, fake_api, tmp_path, database)
    fake_api.webhook.route([first.url, second.url], everywhere=True)
    first.start()
    second.start()
    users, per_user = range(401, 411), 6
    texts = burst(fake_api, users, per_user)
    both = {first.url, second.url}

    def answered_by_both() -> bool:
        answered: dict[int, set[str]] = {}
        for attempt in fake_api.webhook.attempts():
            if attempt["status"] == 200:
                answered.setdefault(attempt["update_id"], set()).add(attempt["url"])
        return all(answered.get(update_id) == both for update_id in texts)

    wait_until(answered_by_both, 120, what="every update answered 200 by both instances")
    assert first.stop() == 0 and second.stop() == 0

    stored = sorted(t for (t,) in rows(database, "SELECT text FROM notes"))
    assert stored == sorted(texts.values()), "an update lost or applied twice"
    assert rows(database, "SELECT COUNT(*) FROM processed_updates") == [(len(texts),)]
    for user in users:
        replies = [r.get("text") or "" for r in fake_api.sent(user)]
        assert len(replies) == per_user, f"chat {user}: {len(replies)} replies for {per_user}"
        numbers = [int(m.group(1)) for t in replies if (m := re.search(r"#(\d+)", t))]
        assert len(set(numbers)) == per_user
    outputs = [bot.proc.output() for bot in (first, second) if bot.proc is not None]
    handled = [
        int(m.group(1))
        for output in outputs
        for m in re.finditer(r"handled (\d+) updates this run", output)
    ]
    assert sum(handled) == len(texts), f"handled {handled} for {len(texts)} updates"
    skipped = sum(output.count("not applied twice") for output in outputs)
    assert skipped == len(texts), "each update's copy was skipped by the other instance"


def test_a_kill_9_of_one_instance_mid_burst_loses_no_acknowledged_update(
    processes: ProcessPool, fake_api: FakeTelegramAPI, tmp_path: Path, database: str
) -> None:
    first, second = instances(processes, fake_api, tmp_path, database)
    fake_api.webhook.route([first.url, second.url])  # round robin; a retry goes to the next
    first.start()
    second.start()
    texts = burst(fake_api, range(501, 521), 12)
    wait_until(lambda: len(fake_api.webhook.acknowledged()) > 40, 60, what="part of the burst")
    first.kill9()
    acknowledged = set(fake_api.webhook.acknowledged())
    assert len(acknowledged) < len(texts), "the burst was over before the kill"
    wait_until(lambda: len(fake_api.webhook.acknowledged()) == len(texts), 120, what="the rest")
    assert second.stop() == 0
    stored = [t for (t,) in rows(database, "SELECT text FROM notes")]
    for update_id in acknowledged:
        assert stored.count(texts[update_id]) == 1, f"update {update_id} answered 200 but lost"
    assert sorted(stored) == sorted(texts.values())


def test_a_conversation_whose_steps_land_on_two_instances_keeps_one_draft(
    processes: ProcessPool, fake_api: FakeTelegramAPI, tmp_path: Path, database: str
) -> None:
    """Round robin: each step of a /remember conversation goes to the other instance, which
    must start from the state and the draft the first one committed."""
    first, second = instances(processes, fake_api, tmp_path, database)
    fake_api.webhook.route([first.url, second.url])
    first.start()
    second.start()
    user = 451
    steps = ("/remember", "part one", "part two", "/done")
    ids = []
    for text in steps:
        before = len(fake_api.sent(user))
        ids.append(fake_api.send_text(user, text))
        fake_api.wait_for_sent(user, after=before, timeout=60)
    served = {a["url"] for i in ids for a in fake_api.webhook.attempts(i) if a["status"] == 200}
    assert served == {first.url, second.url}, "the steps did not go to both instances"
    wait_until(
        lambda: rows(database, f"SELECT text FROM notes WHERE user_id = {user}"),
        30,
        what="the note saved",
    )
    assert first.stop() == 0 and second.stop() == 0
    assert rows(database, f"SELECT text FROM notes WHERE user_id = {user}") == [
        ("part one\npart two",)
    ]
    assert rows(
        database,
        f"SELECT COUNT(*) FROM persistence WHERE kind = 'conversation' AND key LIKE '%{user}%'",
    ) == [(0,)], "the conversation ended on both"
