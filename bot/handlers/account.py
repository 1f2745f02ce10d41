"""The user's own account: /start, /help, /stats, /export, /deleteme, and unknown commands."""

from __future__ import annotations

import json

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ChatType
from telegram.ext import Application, ConversationHandler

from bot.clock import utc_now
from bot.handlers.base import Context, Handlers
from bot.handlers.commands import ADMIN_COMMANDS, COMMANDS
from bot.handlers.formatting import when
from bot.handlers.guards import private_chat_only
from bot.persistence import SQLitePersistence

DELETE_YES, DELETE_NO = "deleteme:yes", "deleteme:no"


class AccountHandlers(Handlers):
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
        data = await self.db.run(self.storage.export_user, user.id)
        document = {
            "format": "erixcast-export/1",
            "exported_at": utc_now().isoformat(timespec="seconds"),
            **data,
        }
        body = json.dumps(document, ensure_ascii=False, indent=2, default=str)
        payload = body.encode("utf-8", "surrogatepass")
        await message.reply_document(
            document=payload,
            filename=f"erixcast-export-{user.id}.json",
            caption=(
                f"Everything I keep about you: {len(data['messages'])} messages, "
                f"{len(data['notes'])} notes."
            ),
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
        counts = await self.db.run(self.storage.erase_user, user.id)
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
    brings it back: user data, the private chat's data, conversation states."""
    if persistence is not None:
        persistence.forget_user(user_id)
    application.drop_user_data(user_id)
    application.drop_chat_data(user_id)  # the private chat has the user's id
    for handlers in application.handlers.values():
        for handler in handlers:
            if isinstance(handler, ConversationHandler):
                drop_conversation_states(handler, user_id)


def drop_conversation_states(handler: ConversationHandler, user_id: int) -> None:
    """End every conversation of ``handler`` whose key holds ``user_id``.

    python-telegram-bot has no public API to reset a conversation: its state dict (a private
    attribute) is the one place, so this function is the one place that touches it."""
    states = getattr(handler, "_conversations", None)
    if states is None:
        return
    for key in [k for k in list(states) if user_id in k]:
        states.pop(key, None)
