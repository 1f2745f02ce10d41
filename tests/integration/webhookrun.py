"""``python -m bot`` in webhook mode as a real process: the settings, waiting until it serves,
and posting to it as Telegram (or anyone else) would."""

from __future__ import annotations

import contextlib
import json
import sys
import urllib.error
import urllib.request
from pathlib import Path

from tests.fakes.telegram_api import FakeTelegramAPI
from tests.helpers import Proc, ProcessPool, free_port, http_get, wait_until
from tests.integration.test_bot_features import START_TIMEOUT, BotUnderTest

SECRET = "webhook-secret_0123456789"
UNLIMITED = {"RATE_LIMIT_BURST": "1000", "RATE_LIMIT_PER_MINUTE": "6000"}


class WebhookBot(BotUnderTest):
    """A bot data directory run in webhook mode on a port of its own; ``extra`` env on top
    (``DATABASE_URL`` for a shared server database)."""

    def __init__(
        self,
        processes: ProcessPool,
        fake: FakeTelegramAPI,
        root: Path,
        public_url: str | None = None,
        **extra: str,
    ) -> None:
        self.webhook_port = free_port()
        self.url = f"http://127.0.0.1:{self.webhook_port}/telegram"
        """Where this instance listens (what the fake's load balancer posts to)."""
        self.public_url = public_url or self.url
        """What it registers with setWebhook (the load balancer's address when there is one)."""
        super().__init__(
            processes,
            fake,
            root,
            TELEGRAM_WEBHOOK_URL=self.public_url,
            TELEGRAM_WEBHOOK_SECRET=SECRET,
            WEBHOOK_HOST="127.0.0.1",
            WEBHOOK_PORT=str(self.webhook_port),
            **UNLIMITED,
            **extra,
        )

    def start(self, wait: bool = True) -> Proc:
        """As BotUnderTest's, with a log of this instance's own (several share a pool)."""
        with contextlib.suppress(FileNotFoundError):
            self.heartbeat.unlink()
        self.proc = self.processes.start(
            f"bot-{self.data_dir.parent.name}", [sys.executable, "-m", "bot"], self.env
        )
        if wait:
            self.wait_polling()
        return self.proc

    def as_polling(self) -> None:
        """The next start polls, on the same data."""
        for key in ("TELEGRAM_WEBHOOK_URL", "TELEGRAM_WEBHOOK_SECRET"):
            self.env.pop(key, None)

    @property
    def webhook_mode(self) -> bool:
        return "TELEGRAM_WEBHOOK_URL" in self.env

    def wait_polling(self) -> None:
        """Polling: the heartbeat. Webhook mode: /health answers 200 and the webhook is
        registered."""
        if not self.webhook_mode:
            super().wait_polling()
            return
        proc = self.proc
        assert proc is not None

        def serving() -> bool:
            if proc.popen.poll() is not None:
                raise AssertionError(f"the bot exited early:\n{proc.output()}")
            try:
                status, _ = http_get(f"http://127.0.0.1:{self.webhook_port}/health", timeout=2)
            except OSError:
                return False
            return status == 200 and self.fake.webhook.url == self.public_url

        try:
            wait_until(serving, START_TIMEOUT, what="the bot to serve its webhook")
        except AssertionError as error:
            raise AssertionError(f"{error}\n{proc.output()}") from None

    def post(
        self,
        body: bytes | dict,
        *,
        secret: str | None = SECRET,
        content_type: str = "application/json",
        timeout: float = 30,
    ) -> int:
        """POST to the webhook; the HTTP status."""
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {"Content-Type": content_type}
        if secret is not None:
            headers["X-Telegram-Bot-Api-Secret-Token"] = secret
        request = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:
                return answer.status
        except urllib.error.HTTPError as error:
            return error.code


def message_update(update_id: int, user_id: int, text: str) -> dict:
    """A private-chat text message as Telegram posts it."""
    user = {"id": user_id, "is_bot": False, "first_name": "Eve"}
    entities = []
    if text.startswith("/"):
        entities = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "date": 1_700_000_000,
            "chat": {"id": user_id, "type": "private", "first_name": "Eve"},
            "from": user,
            "text": text,
            "entities": entities,
        },
    }
