"""Notes (/remember, its drafting conversation, /notes, /forget) and /search."""

from __future__ import annotations

from telegram import Message, Update
from telegram.ext import ConversationHandler

from bot.clock import utc_now
from bot.handlers.base import Context, Handlers
from bot.handlers.formatting import chunks, shorten, when
from bot.handlers.guards import private_chat_only
from bot.storage import NOTE_MAX_CHARS, search_terms

SEARCH_RESULTS = 10
DRAFTING = "drafting"
"""The /remember conversation's one state: collecting the parts of a note."""
CONVERSATION_NAME = "remember"


def command_argument(message: Message) -> str:
    """Everything after the command (newlines kept), stripped."""
    parts = (message.text or "").split(None, 1)
    return parts[1].strip() if len(parts) > 1 else ""


class NoteHandlers(Handlers):
    # --------------------------------------------------------------------------- /remember
    @private_chat_only(refused=ConversationHandler.END)
    async def remember(self, update: Update, context: Context) -> object:
        message, user = update.effective_message, update.effective_user
        assert message is not None and user is not None
        text = command_argument(message)
        if not text:
            context.user_data["draft"] = []  # type: ignore[index]
            await self.reply(
                message,
                "What should I remember? Send the text (several messages are fine), then "
                "/done to save it or /cancel to drop it.",
            )
            return DRAFTING
        context.user_data.pop("draft", None)  # type: ignore[union-attr]
        await self._save_note(message, user.id, text)
        return ConversationHandler.END

    async def _save_note(self, message: Message, user_id: int, text: str) -> bool:
        if len(text) > NOTE_MAX_CHARS:
            await self.reply(
                message,
                f"That is {len(text):,} characters; a note holds at most {NOTE_MAX_CHARS:,}. "
                "Your message is in your history all the same.",
            )
            return False
        note = await self.db.run(
            self.storage.add_note, user_id, text, utc_now(), (message.chat_id, message.message_id)
        )
        await self.reply(message, f"Noted as #{note.number}. /notes lists them all.")
        return True

    async def draft_part(self, update: Update, context: Context) -> object:
        message = update.effective_message
        if message is None or message.text is None:
            return DRAFTING
        draft: list[str] = context.user_data.setdefault("draft", [])  # type: ignore[union-attr]
        if sum(len(part) + 1 for part in draft) + len(message.text) > NOTE_MAX_CHARS:
            await self.reply(
                message,
                f"That would make the note longer than {NOTE_MAX_CHARS:,} characters. "
                "Send /done to save what you have, or /cancel.",
            )
            return DRAFTING
        draft.append(message.text)
        parts = len(draft)
        await self.reply(
            message, f"Got it ({parts} part{'s' * (parts != 1)}). More text, or /done to save."
        )
        return DRAFTING

    async def draft_done(self, update: Update, context: Context) -> object:
        message, user = update.effective_message, update.effective_user
        if message is None or user is None:
            return ConversationHandler.END
        draft = context.user_data.get("draft") or []  # type: ignore[union-attr]
        if not draft:
            await self.reply(message, "Nothing to save yet: send the text first, or /cancel.")
            return DRAFTING
        if await self._save_note(message, user.id, "\n".join(draft)):
            context.user_data.pop("draft", None)  # type: ignore[union-attr]
            return ConversationHandler.END
        return DRAFTING

    async def draft_cancel(self, update: Update, context: Context) -> object:
        context.user_data.pop("draft", None)  # type: ignore[union-attr]
        if update.effective_message is not None:
            await self.reply(update.effective_message, "Dropped. Nothing was saved.")
        return ConversationHandler.END

    async def no_draft(self, update: Update, context: Context) -> None:
        if update.effective_message is not None:
            await self.reply(
                update.effective_message, "There is no note in progress. Start one with /remember."
            )

    # ---------------------------------------------------------------------- /notes /forget
    @private_chat_only()
    async def notes(self, update: Update, context: Context) -> None:
        message, user = update.effective_message, update.effective_user
        assert message is not None and user is not None
        notes = await self.db.run(self.storage.list_notes, user.id)
        if not notes:
            await self.reply(message, "No notes yet. Save one with /remember <text>.")
            return
        lines = [f"Your notes ({len(notes)}):"]
        lines += [f"{note.number}. {shorten(note.text, 300)}" for note in notes]
        for chunk in chunks(lines):
            await self.reply(message, chunk)

    @private_chat_only()
    async def forget(self, update: Update, context: Context) -> None:
        message, user = update.effective_message, update.effective_user
        assert message is not None and user is not None
        argument = context.args[0] if context.args else ""
        if not argument.isascii() or not argument.isdigit() or len(argument) > 9:
            await self.reply(
                message,
                "Send /forget with the number of a note, for example /forget 2 (see /notes).",
            )
            return
        note = await self.db.run(self.storage.forget_note, user.id, int(argument))
        if note is None:
            count = len(await self.db.run(self.storage.list_notes, user.id))
            await self.reply(
                message, f"There is no note {int(argument)}; you have {count}. /notes lists them."
            )
            return
        await self.reply(
            message,
            f"Forgot note {note.number}: “{shorten(note.text, 200)}”. "
            "The notes after it moved up by one.",
        )

    # ----------------------------------------------------------------------------- /search
    @private_chat_only()
    async def search(self, update: Update, context: Context) -> None:
        message, user = update.effective_message, update.effective_user
        assert message is not None and user is not None
        query = command_argument(message)
        if not search_terms(query):
            await self.reply(
                message,
                "Send /search with some words, for example /search milk. "
                "I look through your messages and notes.",
            )
            return
        hits = await self.db.run(self.storage.search, user.id, query, SEARCH_RESULTS)
        if not hits:
            await self.reply(message, f"Nothing found for “{shorten(query, 100)}”.")
            return
        lines = [f"Best matches for “{shorten(query, 100)}”:"]
        for hit in hits:
            label = "📝 note" if hit.kind == "note" else "💬 message"
            lines.append(f"{label}, {when(hit.at)}: {shorten(hit.text, 200)}")
        for chunk in chunks(lines):
            await self.reply(message, chunk)
