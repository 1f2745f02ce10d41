"""Notes (/remember, its drafting conversation, /notes, /forget) and /search."""

from __future__ import annotations

import re

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.constants import ChatType
from telegram.ext import ConversationHandler

from bot.clock import utc_now
from bot.handlers.base import Context
from bot.handlers.formatting import bounded, shorten, when
from bot.handlers.guards import private_chat_only
from bot.handlers.limited import LimitedHandlers
from bot.limits import stored_size
from bot.storage import NOTE_MAX_CHARS, Note, clean_text, search_terms

SEARCH_RESULTS = 10
NOTES_PER_PAGE = 10
NOTE_LINE_CHARS = 300
NOTES_PAGE_DATA = re.compile(r"notes:page:(\d{1,7})")
"""A Previous/Next button's data: the page (from 0) it shows. From outside: checked whole."""
DRAFTING = "drafting"
"""The /remember conversation's one state: collecting the parts of a note."""
CONVERSATION_NAME = "remember"


def command_argument(message: Message) -> str:
    """Everything after the command (newlines kept), stripped."""
    parts = (message.text or "").split(None, 1)
    return parts[1].strip() if len(parts) > 1 else ""


class NoteHandlers(LimitedHandlers):
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
        size = stored_size(clean_text(text))
        if not await self.quota_allows(user_id, size):
            await self.reply(message, self.quota_message())
            return False
        note = await self.db.run(
            self.storage.add_note, user_id, text, utc_now(), (message.chat_id, message.message_id)
        )
        self.limits.quota.add(user_id, size)
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
        """One message, one page of notes, and Previous/Next buttons that edit it in place."""
        message, user = update.effective_message, update.effective_user
        assert message is not None and user is not None
        text, keyboard = await self._notes_page(user.id, 0)
        await self.reply(message, text, reply_markup=keyboard)

    async def notes_button(self, update: Update, context: Context) -> None:
        query, user = update.callback_query, update.effective_user
        if query is None or user is None:
            return
        chat = query.message.chat if query.message is not None else None
        matched = NOTES_PAGE_DATA.fullmatch(query.data or "")
        if chat is None or chat.type != ChatType.PRIVATE or chat.id != user.id:
            await self.answer(query, "This button is not yours.")
            return
        if matched is None:
            await self.answer(query, "That button is from an older version of me: send /notes.")
            return
        await self.answer(query)
        text, keyboard = await self._notes_page(user.id, int(matched.group(1)))
        await self.edit(query, text, reply_markup=keyboard)

    async def _notes_page(self, user_id: int, page: int) -> tuple[str, InlineKeyboardMarkup | None]:
        count = await self.db.run(self.storage.count_notes, user_id)
        if not count:
            return "No notes yet. Save one with /remember <text>.", None
        pages = -(-count // NOTES_PER_PAGE)
        page = min(max(page, 0), pages - 1)  # notes forgotten meanwhile: the last page there is
        notes = await self.db.run(
            self.storage.notes_page, user_id, page * NOTES_PER_PAGE, NOTES_PER_PAGE
        )
        return notes_page_text(notes, count, page, pages), notes_keyboard(page, pages)

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
            count = await self.db.run(self.storage.count_notes, user.id)
            await self.reply(
                message, f"There is no note {int(argument)}; you have {count}. /notes lists them."
            )
            return
        self.limits.quota.add(user.id, -stored_size(note.text))
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
        await self.reply(message, bounded(lines))


def notes_page_text(notes: list[Note], count: int, page: int, pages: int) -> str:
    """One page of /notes; never longer than a Telegram message."""
    header = (
        f"Your notes ({count:,}):"
        if pages == 1
        else (f"Your notes ({count:,}), page {page + 1:,} of {pages:,}:")
    )
    lines = [header] + [f"{note.number}. {shorten(note.text, NOTE_LINE_CHARS)}" for note in notes]
    return bounded(lines)


def notes_keyboard(page: int, pages: int) -> InlineKeyboardMarkup | None:
    buttons = []
    if page > 0:
        buttons.append(InlineKeyboardButton("‹ Previous", callback_data=f"notes:page:{page - 1}"))
    if page + 1 < pages:
        buttons.append(InlineKeyboardButton("Next ›", callback_data=f"notes:page:{page + 1}"))
    return InlineKeyboardMarkup([buttons]) if buttons else None
