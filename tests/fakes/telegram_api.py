"""The tests' Telegram Bot API: the product's own stand-in (``sandbox.bot_api``, what ``make
demo`` runs), under the name the tests have always used."""

from __future__ import annotations

from sandbox.bot_api import MODES, LocalBotAPI, make_token

FakeTelegramAPI = LocalBotAPI

__all__ = ["MODES", "FakeTelegramAPI", "make_token"]
