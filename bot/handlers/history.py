"""The history: every new or edited message is recorded, before any command runs."""

from __future__ import annotations

from telegram import Message, Update

from bot.clock import utc_now
from bot.handlers.base import Context, Handlers
from bot.storage import IncomingMessage

# Attributes of a Message that name its kind when it has no text, most specific first.
_KINDS = (
    "photo",
    "sticker",
    "animation",
    "video",
    "video_note",
    "voice",
    "audio",
    "document",
    "contact",
    "location",
    "venue",
    "poll",
    "dice",
    "game",
    "story",
    "invoice",
    "successful_payment",
    "new_chat_members",
    "left_chat_member",
    "new_chat_title",
    "new_chat_photo",
    "delete_chat_photo",
    "group_chat_created",
    "pinned_message",
)


def message_kind(message: Message) -> str:
    if message.text is not None:
        return "text"
    for kind in _KINDS:
        if getattr(message, kind, None):
            return kind
    return "other"


class HistoryHandlers(Handlers):
    async def record(self, update: Update, context: Context) -> None:
        """Every new or edited message into the history; new ones count for their sender."""
        message = update.edited_message or update.message
        if message is None:
            return
        sender = message.from_user
        incoming = IncomingMessage(
            chat_id=message.chat_id,
            message_id=message.message_id,
            user_id=sender.id if sender is not None else None,
            kind=message_kind(message),
            text=message.text if message.text is not None else message.caption,
            sent_at=message.date or utc_now(),
            update_id=update.update_id,
        )
        if update.edited_message is not None:
            await self.db.run(self.storage.record_edit, incoming, message.edit_date or utc_now())
            return
        user = None
        if sender is not None and not sender.is_bot:
            user = {
                "id": sender.id,
                "first_name": sender.first_name,
                "last_name": sender.last_name,
                "username": sender.username,
                "language_code": sender.language_code,
            }
        chat = {
            "id": message.chat.id,
            "type": message.chat.type,
            "title": message.chat.title,
            "username": message.chat.username,
        }
        await self.db.run(self.storage.record_message, incoming, user, chat, utc_now())
