"""The history: every new or edited message is recorded, before any command runs."""

from __future__ import annotations

from telegram import Message, Update

from bot.clock import utc_now
from bot.handlers.base import Context
from bot.handlers.limited import LimitedHandlers
from bot.limits import stored_size
from bot.storage import IncomingMessage, clean_text

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


class HistoryHandlers(LimitedHandlers):
    async def record(self, update: Update, context: Context) -> None:
        """Every new or edited message into the history; new ones count for their sender. A
        sender at their quota is refused (told once an hour; a command they sent still runs,
        and answers for itself if it would store something)."""
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
        size = stored_size(clean_text(incoming.text))
        if update.edited_message is not None:
            await self._record_edit(message, incoming, size)
            return
        keep = sender is None or await self.quota_allows(sender.id, size)
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
        _, stored = await self.db.run(
            self.storage.record_message, incoming, user, chat, utc_now(), keep=keep
        )
        if sender is None:
            return
        if stored:
            self.limits.quota.add(sender.id, size)
        elif not keep:
            await self._refused(message, sender.id)

    async def _record_edit(self, message: Message, incoming: IncomingMessage, size: int) -> None:
        """An edit stores the new text in place of the old: only what it adds counts."""
        sender = incoming.user_id
        known, old_text = await self.db.run(
            self.storage.message_text, incoming.chat_id, incoming.message_id
        )
        grows = size - (stored_size(old_text) if known else 0)
        if sender is not None and grows > 0 and not await self.quota_allows(sender, grows):
            await self._refused(message, sender)
            return
        await self.db.run(self.storage.record_edit, incoming, message.edit_date or utc_now())
        if sender is not None:
            self.limits.quota.add(sender, grows)

    async def _refused(self, message: Message, user_id: int) -> None:
        is_command = (message.text or "").startswith("/")
        if not is_command and self.limits.quota.should_tell(user_id):
            await self.reply(message, self.quota_message())
