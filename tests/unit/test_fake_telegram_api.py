"""The fake Telegram Bot API speaks enough of the protocol, and never hangs a test."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.fakes.telegram_api import FakeTelegramAPI


@pytest.fixture
def fake() -> Iterator[FakeTelegramAPI]:
    with FakeTelegramAPI() as server:
        yield server


def call(fake: FakeTelegramAPI, method: str, token: str | None = None, **kwargs) -> httpx.Response:
    url = f"{fake.base_url}{token or fake.token}/{method}"
    return httpx.post(url, timeout=kwargs.pop("timeout", 10), **kwargs)


def test_get_me_and_unknown_token_and_method(fake: FakeTelegramAPI) -> None:
    me = call(fake, "getMe").json()
    assert me["ok"] and me["result"]["is_bot"] is True
    assert me["result"]["id"] == int(fake.token.split(":")[0])
    assert me["result"]["username"]

    wrong = call(fake, "getMe", token="1:nope")
    assert wrong.status_code == 401
    assert wrong.json() == {"ok": False, "error_code": 401, "description": "Unauthorized"}

    unknown = call(fake, "sendPoll", data={"chat_id": "1"})
    assert unknown.status_code == 400
    assert "not implemented" in unknown.json()["description"]
    assert httpx.get(f"{fake.base_url}{fake.token}/deleteWebhook").json()["result"] is True


def test_get_updates_long_polls_and_confirms_offsets(fake: FakeTelegramAPI) -> None:
    started = time.monotonic()
    empty = call(fake, "getUpdates", data={"timeout": "1"}).json()
    assert empty == {"ok": True, "result": []}
    assert 0.9 <= time.monotonic() - started < 3

    first = fake.send_text(7, "/start now", username="ann")
    second = fake.send_text(7, "hello")
    started = time.monotonic()
    updates = call(fake, "getUpdates", json={"timeout": 5}).json()["result"]
    assert time.monotonic() - started < 1
    assert [u["update_id"] for u in updates] == [first, second]
    command = updates[0]["message"]
    assert command["entities"] == [{"type": "bot_command", "offset": 0, "length": 6}]
    assert command["from"]["username"] == "ann" and command["chat"]["type"] == "private"
    assert "entities" not in updates[1]["message"]

    # Not confirmed yet: asked again, they come again; an offset drops them for good.
    again = call(fake, "getUpdates", data={"timeout": "0"}).json()["result"]
    assert len(again) == 2
    assert call(fake, "getUpdates", data={"offset": str(second + 1)}).json()["result"] == []
    assert fake.confirmed_offset == second + 1
    assert fake.pending_updates == 0
    assert fake.get_updates_calls == 4


def test_a_waiting_get_updates_answers_as_soon_as_an_update_arrives(fake: FakeTelegramAPI) -> None:
    threading.Timer(0.3, fake.send_text, args=(5, "hi")).start()
    started = time.monotonic()
    updates = call(fake, "getUpdates", data={"timeout": "10"}).json()["result"]
    assert len(updates) == 1 and time.monotonic() - started < 5


def test_send_message_is_recorded_and_waited_for(fake: FakeTelegramAPI) -> None:
    threading.Timer(
        0.2,
        call,
        args=(fake, "sendMessage"),
        kwargs={"data": {"chat_id": "42", "text": "Hello, Ann!"}},
    ).start()
    record = fake.wait_for_sent(42, contains="Hello", timeout=5)
    message = record["result"]
    assert message["chat"]["id"] == 42 and message["from"]["is_bot"] is True
    assert message["text"] == "Hello, Ann!" and message["message_id"] > 0
    assert fake.sent(42) == [record] and fake.sent(43) == []
    with pytest.raises(TimeoutError, match="Hello, Ann!"):
        fake.wait_for_sent(42, contains="Hello", after=1, timeout=0.2)


def test_send_document_and_edits_and_callbacks(fake: FakeTelegramAPI) -> None:
    files = {"document": ("backup.db", b"\x00SQLite bytes", "application/octet-stream")}
    sent = call(fake, "sendDocument", data={"chat_id": "9", "caption": "here"}, files=files)
    assert sent.json()["result"]["document"]["file_name"] == "backup.db"
    (record,) = fake.sent(9)
    assert record["document"] == b"\x00SQLite bytes" and record["filename"] == "backup.db"

    edited = call(fake, "editMessageText", data={"chat_id": "9", "message_id": "3", "text": "x"})
    assert edited.json()["result"]["message_id"] == 3
    assert call(fake, "answerCallbackQuery", data={"callback_query_id": "1"}).json()["result"]
    commands = '[{"command": "start", "description": "hi"}]'
    assert call(fake, "setMyCommands", data={"commands": commands}).json()["ok"]
    assert fake.calls("setMyCommands")[0]["params"]["commands"][0]["command"] == "start"


def test_modes_unauthorized_and_hang(fake: FakeTelegramAPI) -> None:
    fake.set_get_updates_mode("unauthorized")
    assert call(fake, "getUpdates").status_code == 401
    assert call(fake, "getMe").status_code == 200  # only getUpdates is affected

    fake.set_get_updates_mode("hang")
    fake.send_text(1, "queued")
    with pytest.raises(httpx.ReadTimeout):
        call(fake, "getUpdates", timeout=1)
    fake.set_get_updates_mode("normal")
    assert len(call(fake, "getUpdates").json()["result"]) == 1


def test_stop_never_hangs_on_hanging_requests() -> None:
    fake = FakeTelegramAPI().start()
    fake.set_get_updates_mode("hang")
    errors: list[BaseException] = []

    def poll() -> None:
        try:
            call(fake, "getUpdates", data={"timeout": "30"}, timeout=30)
        except BaseException as error:
            errors.append(error)

    pollers = [threading.Thread(target=poll) for _ in range(3)]
    for poller in pollers:
        poller.start()
    deadline = time.monotonic() + 5
    started = time.monotonic()
    fake.stop()
    assert time.monotonic() - started < 5
    for poller in pollers:
        poller.join(max(0.1, deadline - time.monotonic()))
        assert not poller.is_alive()


def test_http_control_side(fake: FakeTelegramAPI) -> None:
    control = fake.control_url
    update_id = httpx.post(f"{control}/send_text", json={"user_id": 3, "text": "/help"}).json()
    assert update_id["update_id"] >= 1
    assert httpx.post(f"{control}/mode", json={"mode": "bogus"}).status_code == 400
    assert httpx.post(f"{control}/mode", json={"mode": "normal"}).json() == {"mode": "normal"}
    call(fake, "sendMessage", data={"chat_id": "3", "text": "Commands"})
    sent = httpx.get(f"{control}/sent", params={"chat_id": "3"}).json()["sent"]
    assert [s["text"] for s in sent] == ["Commands"]
    state = httpx.get(f"{control}/state").json()
    assert state["pending_updates"] == 1 and state["sent"] == 1
