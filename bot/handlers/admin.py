"""Commands for the bot's administrators, answered by the watchdog over loopback."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from telegram import Message

from bot.handlers.base import Handlers
from bot.handlers.formatting import MESSAGE_LIMIT, format_backups, format_status, human_size
from bot.handlers.guards import admin_only
from bot.watchdog_client import WatchdogError


class AdminHandlers(Handlers):
    @admin_only
    async def status(self, message: Message) -> None:
        health = await self._ask(message, self.watchdog.status, "No status")
        if health is not None:
            await self.reply(message, format_status(health)[:MESSAGE_LIMIT])

    @admin_only
    async def backup(self, message: Message) -> None:
        await self.reply(message, "Taking a backup now…")
        result = await self._ask(message, self.watchdog.backup, "The backup failed")
        if result is None:
            return
        rows = result.get("rows") or {}
        total = sum(v for v in rows.values() if isinstance(v, int)) if isinstance(rows, dict) else 0
        await self.reply(
            message,
            f"Backup {result.get('id', '?')} done: {human_size(result.get('size_bytes'))}, "
            f"{total:,} rows, sha256 {str(result.get('sha256', '?'))[:12]}…",
        )

    @admin_only
    async def backups(self, message: Message) -> None:
        listing = await self._ask(message, self.watchdog.backups, "No list of backups")
        if listing is not None:
            await self.reply(message, format_backups(listing)[:MESSAGE_LIMIT])

    async def _ask(
        self, message: Message, request: Callable[[], Awaitable[dict[str, Any]]], failure: str
    ) -> dict[str, Any] | None:
        """The watchdog's answer; None once the administrator was told why there is none."""
        try:
            return await request()
        except WatchdogError as error:
            await self.reply(message, f"{failure}: {error}.")
            return None
