"""Webhook mode's settings: unset means polling; the URL and the secret are checked, the secret
is never shown in an error, and the listening port is not the watchdog's."""

from __future__ import annotations

import pytest

from conf.settings import SettingsError, load_settings
from watchdog.runtime.child import bot_environment

SECRET = "A-good_secret-123"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    import os

    for key in list(os.environ):
        if key.startswith(("TELEGRAM_", "WEBHOOK_")) or key in ("PORT", "DATABASE_URL"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("ENV_FILE", os.devnull)
    monkeypatch.setenv("DATA_DIR", str(tmp_path))


def test_unset_is_polling(monkeypatch):
    monkeypatch.setenv("TELEGRAM_WEBHOOK_URL", " ")
    settings = load_settings()
    assert settings.telegram_webhook_url is None and settings.webhook_port == 8443


def test_a_complete_webhook_setting(monkeypatch):
    monkeypatch.setenv("TELEGRAM_WEBHOOK_URL", "https://bot.example.com/telegram/in")
    monkeypatch.setenv("TELEGRAM_WEBHOOK_SECRET", SECRET)
    settings = load_settings()
    assert settings.webhook_path == "/telegram/in"
    assert SECRET in settings.secrets(), "redacted from logs like every secret"
    env = bot_environment(settings, None)
    assert env["TELEGRAM_WEBHOOK_URL"] == "https://bot.example.com/telegram/in"
    assert env["TELEGRAM_WEBHOOK_SECRET"] == SECRET and env["WEBHOOK_PORT"] == "8443"


@pytest.mark.parametrize(
    ("url", "secret", "port", "said"),
    [
        ("https://bot.example.com/t", None, None, "TELEGRAM_WEBHOOK_SECRET must be set"),
        ("http://bot.example.com/t", SECRET, None, "TELEGRAM_WEBHOOK_URL"),
        ("ftp://bot.example.com/t", SECRET, None, "TELEGRAM_WEBHOOK_URL"),
        ("https://u:p@bot.example.com/t", SECRET, None, "credentials"),
        ("https://bot.example.com/health", SECRET, None, "/health"),
        ("https://bot.example.com/t", "has space", None, "TELEGRAM_WEBHOOK_SECRET"),
        ("https://bot.example.com/t", "x" * 257, None, "TELEGRAM_WEBHOOK_SECRET"),
        ("https://bot.example.com/t", "ünïcode", None, "TELEGRAM_WEBHOOK_SECRET"),
        ("https://bot.example.com/t", SECRET, "10000", "WEBHOOK_PORT"),
    ],
)
def test_bad_webhook_settings_are_one_clear_line(monkeypatch, url, secret, port, said):
    monkeypatch.setenv("TELEGRAM_WEBHOOK_URL", url)
    if secret is not None:
        monkeypatch.setenv("TELEGRAM_WEBHOOK_SECRET", secret)
    if port is not None:
        monkeypatch.setenv("WEBHOOK_PORT", port)
    with pytest.raises(SettingsError) as error:
        load_settings()
    assert said in str(error.value)
    if secret is not None:
        assert secret not in str(error.value), "the secret was shown"


def test_a_loopback_http_url_is_allowed_for_a_local_bot_api(monkeypatch):
    monkeypatch.setenv("TELEGRAM_WEBHOOK_URL", "http://127.0.0.1:9000/t")
    monkeypatch.setenv("TELEGRAM_WEBHOOK_SECRET", SECRET)
    assert load_settings().webhook_path == "/t"
