"""Webhook mode end to end on SQLite: ``python -m bot`` registers its webhook with the fake Bot
API, which POSTs updates to it; a request without the right secret is refused and changes
nothing; a kill -9 mid-burst loses no update answered 200; polling afterwards deletes the
webhook and works as before."""

from __future__ import annotations

import re

import pytest

from tests.fakes.telegram_api import FakeTelegramAPI
from tests.helpers import ProcessPool, http_get, wait_until
from tests.integration.webhookrun import SECRET, WebhookBot, message_update

pytestmark = pytest.mark.integration


@pytest.fixture
def bot(processes: ProcessPool, fake_api: FakeTelegramAPI, tmp_path) -> WebhookBot:
    return WebhookBot(processes, fake_api, tmp_path)


def test_webhook_mode_registers_serves_and_answers(bot: WebhookBot, fake_api: FakeTelegramAPI):
    bot.start()
    (registered,) = fake_api.calls("setWebhook")
    params = registered["params"]
    assert params["url"] == bot.url and params["secret_token"] == SECRET
    assert str(params["drop_pending_updates"]).lower() == "false"
    assert "message" in params["allowed_updates"] and "callback_query" in params["allowed_updates"]
    assert not fake_api.calls("deleteWebhook"), "webhook mode must not delete its webhook"

    assert "Hello" in bot.say(7, "/start")
    reply = bot.say(7, "/remember oat milk")
    assert re.search(r"#\d+", reply), reply
    assert bot.heartbeat.exists(), "the watchdog's sign of life beats without getUpdates"
    status, body = http_get(f"http://127.0.0.1:{bot.webhook_port}/health")
    assert status == 200 and '"mode": "webhook"' in body
    acknowledged = fake_api.webhook.acknowledged()
    assert len(acknowledged) == 2

    assert bot.stop() == 0
    assert bot.query("SELECT text FROM notes") == [("oat milk",)]
    assert SECRET not in bot.output(), "the webhook secret reached a log"
    assert not fake_api.calls("deleteWebhook"), "stopping one instance must not delete the webhook"


def test_a_request_without_the_right_secret_is_refused_and_stores_nothing(bot: WebhookBot):
    bot.start()
    forged = message_update(900_001, 66, "/remember forged")
    assert bot.post(forged, secret=None) == 401
    assert bot.post(forged, secret="not-the-secret") == 403
    assert bot.post(forged, secret=SECRET[:-1]) == 403
    assert bot.post(forged, secret=SECRET + "x") == 403
    assert bot.post(b"{not json", secret=SECRET) == 400
    assert bot.post({"message": {}}, secret=SECRET) == 400, "no update_id"
    assert bot.post(forged, secret=SECRET, content_type="text/plain") == 415
    assert bot.post(b"{" + b" " * (2 * 1024 * 1024) + b"}", secret=SECRET) == 413
    # The same update with the secret goes through: the refusals were about the requests.
    assert bot.post(message_update(900_002, 67, "/remember genuine")) == 200

    assert bot.stop() == 0
    assert bot.query("SELECT user_id, text FROM notes") == [(67, "genuine")]
    assert bot.query("SELECT update_id FROM processed_updates") == [(900_002,)]
    assert bot.query("SELECT COUNT(*) FROM users WHERE id = 66") == [(0,)]
    output = bot.output()
    assert "refused a webhook request" in output
    assert "not-the-secret" not in output and SECRET not in output


def test_the_200_comes_after_the_commit_and_a_copy_is_not_applied_twice(bot: WebhookBot):
    bot.start()
    update = message_update(900_010, 68, "/remember once")
    assert bot.post(update) == 200
    # Answered 200 means committed: the row is there before anything else happens.
    assert bot.query("SELECT text FROM notes WHERE user_id = 68") == [("once",)]
    assert bot.post(update) == 200, "a redelivered copy is confirmed, not refused"
    assert bot.stop() == 0
    assert bot.query("SELECT COUNT(*) FROM notes WHERE user_id = 68") == [(1,)]
    replies = [r.get("text") or "" for r in bot.fake.sent(68)]
    assert len(replies) == 1 and re.search(r"#\d+", replies[0]), replies
    assert "was handled already; not applied twice" in bot.output()


def test_a_kill_9_mid_burst_loses_no_acknowledged_update(
    bot: WebhookBot, fake_api: FakeTelegramAPI
):
    users = list(range(301, 321))
    bot.start()
    texts: dict[int, str] = {}
    for n in range(15):
        for user in users:
            text = f"burst {n} from {user}"
            texts[fake_api.send_text(user, f"/remember {text}")] = text
    wait_until(lambda: len(fake_api.webhook.acknowledged()) > 40, 60, what="part of the burst")
    bot.kill9()
    acknowledged = set(fake_api.webhook.acknowledged())
    assert len(acknowledged) < len(texts), "the whole burst was done before the kill"

    bot.start()
    wait_until(lambda: len(fake_api.webhook.acknowledged()) == len(texts), 120, what="the rest")
    assert bot.stop() == 0
    stored = [t for (t,) in bot.query("SELECT text FROM notes")]
    for update_id in acknowledged:
        assert stored.count(texts[update_id]) == 1, f"update {update_id} answered 200 but lost"
    assert sorted(stored) == sorted(texts.values())
    failed = [a for a in fake_api.webhook.attempts() if a["status"] != 200]
    assert failed, "the kill interrupted no delivery: the test proved nothing"


def test_polling_after_webhook_mode_deletes_the_webhook_and_polls(
    bot: WebhookBot, fake_api: FakeTelegramAPI
):
    bot.start()
    assert "Hello" in bot.say(8, "/start")
    assert bot.stop() == 0
    assert fake_api.webhook.active
    bot.as_polling()
    bot.start()
    assert fake_api.calls("deleteWebhook") and not fake_api.webhook.active
    reply = bot.say(8, "/remember polled")
    assert re.search(r"#\d+", reply), reply
    assert bot.stop() == 0
    assert sorted(t for (t,) in bot.query("SELECT text FROM notes")) == ["polled"]
