"""Handlers under the per-user limits (:mod:`bot.limits`): the rate gate in front of every
handler, and the quota every write of a message or a note asks first."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from telegram import Update
from telegram.ext import ApplicationHandlerStop

from bot.delivery import leave_out_of_journal
from bot.handlers.base import Context, Handlers
from bot.handlers.formatting import human_size
from bot.limits import LimitSettings, UserLimits, Verdict

log = logging.getLogger("bot.handlers")


def _default_limits() -> UserLimits:
    return UserLimits.build(LimitSettings.defaults())


def slow_down(seconds: int) -> str:
    return (
        "You are sending faster than I can keep up with, so I am ignoring your messages for "
        f"now: what you send in the next {max(1, seconds)} seconds or so is not saved and its "
        "commands are not run. I will not repeat this; just send it again in a moment."
    )


def slow_down_short(seconds: int) -> str:
    """For a button (Telegram shows at most 200 characters there)."""
    return f"Too fast: I am ignoring your taps and messages for about {max(1, seconds)} s."


def quota_reached(quota_bytes: int) -> str:
    return (
        f"Your storage is full: you have reached the {human_size(quota_bytes)} I keep "
        "per person, so I did not save that, and I will not save new messages or notes until "
        "you make room. /forget a note, or /export everything and then /deleteme to start over."
    )


@dataclass(frozen=True, eq=False)
class LimitedHandlers(Handlers):
    limits: UserLimits = field(default_factory=_default_limits)

    async def gate(self, update: Update, context: Context) -> None:
        """Before every handler (a TypeHandler in the earliest group): a user over their rate
        is told once per episode, and their update goes no further — not recorded, not run.
        Administrators are not limited: they are the operator, and an incident is exactly
        when they send many commands in a row."""
        rate, user = self.limits.rate, update.effective_user
        if rate is None or user is None or user.id in self.admin_ids:
            return
        verdict = rate.take(user.id)
        if verdict is Verdict.PASS:
            return
        if verdict is Verdict.TELL:
            log.info("user %s is over the rate limit; their updates are dropped", user.id)
            seconds = rate.wait_seconds(user.id)
            if update.callback_query is not None:
                await self.answer(update.callback_query, slow_down_short(seconds))
            elif update.effective_message is not None:
                await self.reply(update.effective_message, slow_down(seconds))
        elif update.callback_query is not None:
            await self.answer(update.callback_query)  # stop the button's spinner, quietly
        leave_out_of_journal()
        raise ApplicationHandlerStop

    async def quota_allows(self, user_id: int, extra: int) -> bool:
        """Whether the user may store ``extra`` more bytes (counted from the database the
        first time, then kept in memory)."""
        book = self.limits.quota
        if not book.known(user_id):
            book.set(user_id, await self.db.run(self.storage.stored_bytes, user_id))
        return book.allows(user_id, extra)

    def quota_message(self) -> str:
        return quota_reached(self.limits.settings.quota_bytes)
