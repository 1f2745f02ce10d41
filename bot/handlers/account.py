"""The user's own account: /start, /help, /stats, /export, /deleteme, and unknown commands."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.constants import ChatType
from telegram.ext import Application, ConversationHandler

from bot.clock import utc_now
from bot.export import MAX_PARTS, PART_BYTES, ExportFiles, ExportTooLarge, write_export
from bot.handlers.base import Context
from bot.handlers.commands import ADMIN_COMMANDS, COMMANDS
from bot.handlers.formatting import human_size, when
from bot.handlers.guards import private_chat_only
from bot.handlers.limited import LimitedHandlers
from bot.persistence import SQLitePersistence
from bot.storage import CONVERSATION

log = logging.getLogger("bot.handlers")

DELETE_YES, DELETE_NO = "deleteme:yes", "deleteme:no"
EXPORTS_AT_ONCE = 2
"""Exports being written or sent at the same time (each holds a part in memory to upload)."""
UPLOAD_TIMEOUT = 300.0
"""Seconds a part's upload may take (up to 48 MB on a slow link)."""


@dataclass(frozen=True, eq=False)
class AccountHandlers(LimitedHandlers):
    exports: Path | None = None
    """Where exports are written (``DataLayout.exports``); None while replaying: an export
    changes nothing stored, and a replay sends nothing, so there is nothing to do."""

    async def start(self, update: Update, context: Context) -> None:
        user, message = update.effective_user, update.effective_message
        if user is None or message is None:
            return
        record = await self.db.run(self.storage.get_user, user.id)
        name = user.first_name or "there"
        if record is None or record.is_new:
            text = f"Hello, {name}! Nice to meet you. Send /help to see what I can do."
        else:
            times = record.message_count
            text = f"Welcome back, {name}! I have seen you {times} time{'s' * (times != 1)}."
        await self.reply(message, text)

    async def help(self, update: Update, context: Context) -> None:
        message, user = update.effective_message, update.effective_user
        if message is None:
            return
        lines = ["Here is what I understand:"]
        lines += [f"/{command} – {description}" for command, description in COMMANDS]
        if user is not None and user.id in self.admin_ids:
            lines += ["", "For administrators:"]
            lines += [f"/{command} – {description}" for command, description in ADMIN_COMMANDS]
        lines += ["", "Everything else you send me is kept, so you can /search it later."]
        await self.reply(message, "\n".join(lines))

    async def unknown(self, update: Update, context: Context) -> None:
        message = update.effective_message
        if message is None or not message.text:
            return
        command, _, addressee = message.text.split(maxsplit=1)[0].partition("@")
        if addressee and addressee.lower() != (context.bot.username or "").lower():
            return  # a command for another bot in the same group
        command = command[:40]
        await self.reply(
            message, f"Sorry, I don't know {command}. Send /help to see what I can do."
        )

    @private_chat_only()
    async def stats(self, update: Update, context: Context) -> None:
        message, user = update.effective_message, update.effective_user
        assert message is not None and user is not None
        stats = await self.db.run(self.storage.user_stats, user.id)
        record = stats["user"]
        first = when(record.first_seen) if record is not None else "just now"
        kinds = ", ".join(f"{kind} {count}" for kind, count in stats["by_kind"].items())
        lines = [
            f"First seen: {first}",
            f"Messages: {stats['messages']}" + (f" ({kinds})" if kinds else ""),
            f"Edited: {stats['edited']}",
            f"Notes: {stats['notes']}",
        ]
        await self.reply(message, "\n".join(lines))

    @private_chat_only()
    async def export(self, update: Update, context: Context) -> None:
        message, user = update.effective_message, update.effective_user
        assert message is not None and user is not None
        if self.exports is None:
            return
        busy = self.limits.exports_in_progress
        if user.id in busy:
            await self.reply(message, "Your export is on its way already.")
            return
        if len(busy) >= EXPORTS_AT_ONCE:
            await self.reply(message, "I am busy with other exports: try again in a minute.")
            return
        busy.add(user.id)

        async def work() -> None:
            try:
                await self._export(message, user.id)
            finally:
                busy.discard(user.id)

        try:
            await self.in_background(message.chat_id, work)
        except BaseException:
            busy.discard(user.id)
            raise

    async def _export(self, message: Message, user_id: int) -> None:
        folder = self.exports
        assert folder is not None
        try:
            files = await write_export(self.storage, self.db, user_id, folder, utc_now())
        except ExportTooLarge:
            await self.reply(
                message,
                f"Your export is too large to send: more than {MAX_PARTS} files of "
                f"{human_size(PART_BYTES)}, Telegram's limit for a bot. Nothing was sent.",
            )
            return
        except OSError as error:
            log.error("export of user %s failed: %s", user_id, error.strerror or error)
            await self.reply(
                message, "I could not write your export just now; please try again later."
            )
            return
        try:
            await self._send_export(message, user_id, files)
        finally:
            files.remove()

    async def _send_export(self, message: Message, user_id: int, files: ExportFiles) -> None:
        """The parts as documents. Not through :meth:`reply`: a document is not a text, and
        this is the one place the bot sends one."""
        summary = f"{files.messages:,} messages, {files.notes:,} notes"
        total = len(files.parts)
        for number, part in enumerate(files.parts, start=1):
            if total == 1:
                name = f"erixcast-export-{user_id}.json.gz"
                caption = f"Everything I keep about you: {summary} (JSON, gzip-compressed)."
            else:
                name = f"erixcast-export-{user_id}.json.gz.part{number}"
                caption = (
                    f"Part {number} of {total} of everything I keep about you ({summary}). "
                    "Join the parts in order (cat part1 part2 … > export.json.gz), then unzip."
                )
            with part.open("rb") as document:
                await message.reply_document(
                    document=document,
                    filename=name,
                    caption=caption,
                    read_timeout=UPLOAD_TIMEOUT,
                    write_timeout=UPLOAD_TIMEOUT,
                )

    # --------------------------------------------------------------------------- /deleteme
    @private_chat_only(needs_sender=False)
    async def deleteme(self, update: Update, context: Context) -> None:
        message = update.effective_message
        assert message is not None
        keyboard = InlineKeyboardMarkup(
            [
                [
                    InlineKeyboardButton("Yes, erase everything", callback_data=DELETE_YES),
                    InlineKeyboardButton("No, keep it", callback_data=DELETE_NO),
                ]
            ]
        )
        await self.reply(
            message,
            "This erases your messages, your notes and everything else I keep about you. "
            "It cannot be undone. Are you sure?",
            reply_markup=keyboard,
        )

    async def deleteme_answer(self, update: Update, context: Context) -> None:
        query, user = update.callback_query, update.effective_user
        if query is None or user is None:
            return
        chat = query.message.chat if query.message is not None else None
        if chat is None or chat.type != ChatType.PRIVATE or chat.id != user.id:
            await self.answer(query, "This button is not yours.")
            return
        if query.data != DELETE_YES:
            await self.answer(query)
            await self.edit(query, "Nothing was erased.")
            return
        counts = await self.db.run(self.storage.erase_user, user.id, update.update_id, utc_now())
        if self.journal is not None:
            # Out of the journal too, and recorded there, so no replay brings the user back.
            await self.db.run(self.journal.erase_user, user.id, update.update_id)
        forget_in_memory(context.application, self.persistence, user.id)
        await self.answer(query, "Erased.")
        await self.edit(
            query,
            f"Done: I erased {counts['messages']} messages and {counts['notes']} notes, and "
            "everything else I kept about you. If you write again, I start from scratch.",
        )


def forget_in_memory(
    application: Application, persistence: SQLitePersistence | None, user_id: int
) -> None:
    """The rows are gone; drop the same data from the application's memory so no later write
    brings it back: user data, the private chat's data, conversation states, and what the
    limits counted of them (replay calls this for the erasures it re-applies, too)."""
    if persistence is not None:
        persistence.forget_user(user_id)
    application.drop_user_data(user_id)
    application.drop_chat_data(user_id)  # the private chat has the user's id
    seen: set[int] = set()
    for handlers in application.handlers.values():
        for handler in handlers:
            if isinstance(handler, ConversationHandler):
                drop_conversation_states(handler, user_id)
            owner = getattr(getattr(handler, "callback", None), "__self__", None)
            if isinstance(owner, LimitedHandlers) and id(owner.limits) not in seen:
                seen.add(id(owner.limits))
                owner.limits.forget(user_id)


async def refresh_conversation_states(
    application: Application, persistence: SQLitePersistence, update: object
) -> None:
    """On a shared server, before any handler: the state of ``update``'s conversations as the
    database holds it now — another instance may have handled the conversation's last step
    (python-telegram-bot reads states once, at start)."""
    for handlers in application.handlers.values():
        for handler in handlers:
            if not (isinstance(handler, ConversationHandler) and handler.persistent):
                continue
            try:
                key = handler._get_key(update)  # type: ignore[arg-type]  # see below
            except (RuntimeError, AttributeError):
                continue  # an update this conversation has no key for
            found, state = await persistence.fresh_row(CONVERSATION, str(handler.name), key)
            states = getattr(handler, "_conversations", None)
            if states is None:
                continue
            if found:
                states[key] = state
            else:
                states.pop(key, None)


def drop_conversation_states(handler: ConversationHandler, user_id: int) -> None:
    """End every conversation of ``handler`` whose key holds ``user_id``.

    python-telegram-bot has no public API to read or reset a conversation: its key function and
    its state dict (private attributes) are the one place, so this function and
    :func:`refresh_conversation_states` are the only ones that touch them."""
    states = getattr(handler, "_conversations", None)
    if states is None:
        return
    for key in [k for k in list(states) if user_id in k]:
        states.pop(key, None)
