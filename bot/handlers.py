"""What the bot answers. Handlers reach the database through the storage given to ``register``.

Every message (and every edit) is recorded first, in handler group -1; commands run in group 0.
Personal commands work in a private chat only (a group would see the answers).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from telegram import (
    BotCommand,
    BotCommandScopeChat,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    Update,
)
from telegram.constants import ChatType
from telegram.error import Conflict, InvalidToken, NetworkError, RetryAfter, TelegramError
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    ConversationHandler,
    MessageHandler,
    filters,
)

from bot import codec
from bot.persistence import SQLitePersistence
from bot.storage import (
    NOTE_MAX_CHARS,
    DatabaseThread,
    IncomingMessage,
    Storage,
    search_terms,
)
from bot.watchdog_client import WatchdogClient, WatchdogError

log = logging.getLogger(__name__)

COMMANDS = (
    ("start", "register and say hello"),
    ("help", "list the commands"),
    ("remember", "save a note: /remember <text>, or /remember and then the text"),
    ("notes", "list your notes, numbered"),
    ("forget", "delete a note: /forget <number>"),
    ("search", "search your messages and notes: /search <words>"),
    ("stats", "what I know about you, in numbers"),
    ("export", "everything I keep about you, as a JSON file"),
    ("deleteme", "erase everything I keep about you"),
)
ADMIN_COMMANDS = (
    ("status", "the watchdog's health summary"),
    ("backup", "take a backup now"),
    ("backups", "the newest backup of each tier"),
)
TRACKING_GROUP = -1
"""Runs before the command handlers (group 0), for every message."""
MESSAGE_LIMIT = 4096
REPLY_CHUNK = 3900
SEARCH_RESULTS = 10
DRAFTING = "drafting"
"""The /remember conversation's one state: collecting the parts of a note."""
CONVERSATION_NAME = "remember"
DELETE_YES, DELETE_NO = "deleteme:yes", "deleteme:no"

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


def shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())  # one line
    return text if len(text) <= limit else text[: limit - 1] + "…"


def chunks(lines: list[str], limit: int = REPLY_CHUNK) -> list[str]:
    """Lines joined into messages of at most ``limit`` characters."""
    out: list[str] = []
    current = ""
    for line in lines:
        line = line[:limit]
        if current and len(current) + 1 + len(line) > limit:
            out.append(current)
            current = line
        else:
            current = f"{current}\n{line}" if current else line
    if current:
        out.append(current)
    return out


def command_argument(message: Message) -> str:
    """Everything after the command (newlines kept), stripped."""
    parts = (message.text or "").split(None, 1)
    return parts[1].strip() if len(parts) > 1 else ""


def when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _now() -> datetime:
    return datetime.now(UTC)


class Handlers:
    def __init__(
        self,
        storage: Storage,
        db_thread: DatabaseThread,
        *,
        admin_ids: tuple[int, ...] = (),
        watchdog: WatchdogClient | None = None,
        persistence: SQLitePersistence | None = None,
    ) -> None:
        self.storage = storage
        self.db = db_thread
        self.admin_ids = frozenset(admin_ids)
        self.watchdog = watchdog or WatchdogClient(None, None)
        self.persistence = persistence

    # ---------------------------------------------------------------------------- history
    async def record(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
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
            sent_at=message.date or _now(),
            update_id=update.update_id,
        )
        if update.edited_message is not None:
            await self.db.run(self.storage.record_edit, incoming, message.edit_date or _now())
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
        await self.db.run(self.storage.record_message, incoming, user, chat, _now())

    # --------------------------------------------------------------------------- basics
    async def start(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
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
        await message.reply_text(text)

    async def help(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message, user = update.effective_message, update.effective_user
        if message is None:
            return
        lines = ["Here is what I understand:"]
        lines += [f"/{command} – {description}" for command, description in COMMANDS]
        if user is not None and user.id in self.admin_ids:
            lines += ["", "For administrators:"]
            lines += [f"/{command} – {description}" for command, description in ADMIN_COMMANDS]
        lines += ["", "Everything else you send me is kept, so you can /search it later."]
        await message.reply_text("\n".join(lines))

    async def unknown(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        if message is None or not message.text:
            return
        command, _, addressee = message.text.split(maxsplit=1)[0].partition("@")
        if addressee and addressee.lower() != (context.bot.username or "").lower():
            return  # a command for another bot in the same group
        command = command[:40]
        await message.reply_text(f"Sorry, I don't know {command}. Send /help to see what I can do.")

    async def _private(self, update: Update) -> bool:
        """True in a private chat; elsewhere says why not (notes are personal)."""
        chat, message = update.effective_chat, update.effective_message
        if chat is not None and chat.type == ChatType.PRIVATE:
            return True
        if message is not None:
            await message.reply_text("Let's do that in a private chat with me: it is personal.")
        return False

    # ------------------------------------------------------------------------------ notes
    async def remember(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> object:
        message, user = update.effective_message, update.effective_user
        if message is None or user is None or not await self._private(update):
            return ConversationHandler.END
        text = command_argument(message)
        if not text:
            context.user_data["draft"] = []  # type: ignore[index]
            await message.reply_text(
                "What should I remember? Send the text (several messages are fine), then "
                "/done to save it or /cancel to drop it."
            )
            return DRAFTING
        context.user_data.pop("draft", None)  # type: ignore[union-attr]
        await self._save_note(message, user.id, text)
        return ConversationHandler.END

    async def _save_note(self, message: Message, user_id: int, text: str) -> bool:
        if len(text) > NOTE_MAX_CHARS:
            await message.reply_text(
                f"That is {len(text):,} characters; a note holds at most {NOTE_MAX_CHARS:,}. "
                "Your message is in your history all the same."
            )
            return False
        note = await self.db.run(
            self.storage.add_note, user_id, text, _now(), (message.chat_id, message.message_id)
        )
        await message.reply_text(f"Noted as #{note.number}. /notes lists them all.")
        return True

    async def draft_part(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> object:
        message = update.effective_message
        if message is None or message.text is None:
            return DRAFTING
        draft: list[str] = context.user_data.setdefault("draft", [])  # type: ignore[union-attr]
        if sum(len(part) + 1 for part in draft) + len(message.text) > NOTE_MAX_CHARS:
            await message.reply_text(
                f"That would make the note longer than {NOTE_MAX_CHARS:,} characters. "
                "Send /done to save what you have, or /cancel."
            )
            return DRAFTING
        draft.append(message.text)
        parts = len(draft)
        await message.reply_text(
            f"Got it ({parts} part{'s' * (parts != 1)}). More text, or /done to save."
        )
        return DRAFTING

    async def draft_done(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> object:
        message, user = update.effective_message, update.effective_user
        if message is None or user is None:
            return ConversationHandler.END
        draft = context.user_data.get("draft") or []  # type: ignore[union-attr]
        if not draft:
            await message.reply_text("Nothing to save yet: send the text first, or /cancel.")
            return DRAFTING
        if await self._save_note(message, user.id, "\n".join(draft)):
            context.user_data.pop("draft", None)  # type: ignore[union-attr]
            return ConversationHandler.END
        return DRAFTING

    async def draft_cancel(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> object:
        context.user_data.pop("draft", None)  # type: ignore[union-attr]
        if update.effective_message is not None:
            await update.effective_message.reply_text("Dropped. Nothing was saved.")
        return ConversationHandler.END

    async def no_draft(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        if update.effective_message is not None:
            await update.effective_message.reply_text(
                "There is no note in progress. Start one with /remember."
            )

    async def notes(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message, user = update.effective_message, update.effective_user
        if message is None or user is None or not await self._private(update):
            return
        notes = await self.db.run(self.storage.list_notes, user.id)
        if not notes:
            await message.reply_text("No notes yet. Save one with /remember <text>.")
            return
        lines = [f"Your notes ({len(notes)}):"]
        lines += [f"{note.number}. {shorten(note.text, 300)}" for note in notes]
        for chunk in chunks(lines):
            await message.reply_text(chunk)

    async def forget(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message, user = update.effective_message, update.effective_user
        if message is None or user is None or not await self._private(update):
            return
        argument = context.args[0] if context.args else ""
        if not argument.isascii() or not argument.isdigit() or len(argument) > 9:
            await message.reply_text(
                "Send /forget with the number of a note, for example /forget 2 (see /notes)."
            )
            return
        note = await self.db.run(self.storage.forget_note, user.id, int(argument))
        if note is None:
            count = len(await self.db.run(self.storage.list_notes, user.id))
            await message.reply_text(
                f"There is no note {int(argument)}; you have {count}. /notes lists them."
            )
            return
        await message.reply_text(
            f"Forgot note {note.number}: “{shorten(note.text, 200)}”. "
            "The notes after it moved up by one."
        )

    async def search(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message, user = update.effective_message, update.effective_user
        if message is None or user is None or not await self._private(update):
            return
        query = command_argument(message)
        if not search_terms(query):
            await message.reply_text(
                "Send /search with some words, for example /search milk. "
                "I look through your messages and notes."
            )
            return
        hits = await self.db.run(self.storage.search, user.id, query, SEARCH_RESULTS)
        if not hits:
            await message.reply_text(f"Nothing found for “{shorten(query, 100)}”.")
            return
        lines = [f"Best matches for “{shorten(query, 100)}”:"]
        for hit in hits:
            label = "📝 note" if hit.kind == "note" else "💬 message"
            lines.append(f"{label}, {when(hit.at)}: {shorten(hit.text, 200)}")
        for chunk in chunks(lines):
            await message.reply_text(chunk)

    async def stats(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message, user = update.effective_message, update.effective_user
        if message is None or user is None or not await self._private(update):
            return
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
        await message.reply_text("\n".join(lines))

    async def export(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message, user = update.effective_message, update.effective_user
        if message is None or user is None or not await self._private(update):
            return
        data = await self.db.run(self.storage.export_user, user.id)
        document = {
            "format": "erixcast-export/1",
            "exported_at": _now().isoformat(timespec="seconds"),
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

    # --------------------------------------------------------------------------- deleteme
    async def deleteme(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        if message is None or not await self._private(update):
            return
        keyboard = InlineKeyboardMarkup(
            [
                [
                    InlineKeyboardButton("Yes, erase everything", callback_data=DELETE_YES),
                    InlineKeyboardButton("No, keep it", callback_data=DELETE_NO),
                ]
            ]
        )
        await message.reply_text(
            "This erases your messages, your notes and everything else I keep about you. "
            "It cannot be undone. Are you sure?",
            reply_markup=keyboard,
        )

    async def deleteme_answer(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query, user = update.callback_query, update.effective_user
        if query is None or user is None:
            return
        chat = query.message.chat if query.message is not None else None
        if chat is None or chat.type != ChatType.PRIVATE or chat.id != user.id:
            await query.answer("This button is not yours.")
            return
        if query.data != DELETE_YES:
            await query.answer()
            await query.edit_message_text("Nothing was erased.")
            return
        counts = await self.db.run(self.storage.erase_user, user.id)
        self._forget_in_memory(context.application, user.id)
        await query.answer("Erased.")
        await query.edit_message_text(
            f"Done: I erased {counts['messages']} messages and {counts['notes']} notes, and "
            "everything else I kept about you. If you write again, I start from scratch."
        )

    def _forget_in_memory(self, application: Application, user_id: int) -> None:
        """The rows are gone; drop the same data from the application's memory so no later
        write brings it back: user data, the private chat's data, conversation states."""
        if self.persistence is not None:
            self.persistence.forget_user(user_id)
        application.drop_user_data(user_id)
        application.drop_chat_data(user_id)  # the private chat has the user's id
        for handlers in application.handlers.values():
            for handler in handlers:
                if isinstance(handler, ConversationHandler):
                    # No public API resets a conversation; its state dict is the one place.
                    states = getattr(handler, "_conversations", None)
                    if states is None:
                        continue
                    for key in [k for k in list(states) if user_id in k]:
                        states.pop(key, None)

    # ------------------------------------------------------------------------------ admin
    async def _admin(self, update: Update) -> bool:
        user, message = update.effective_user, update.effective_message
        if user is not None and user.id in self.admin_ids:
            return True
        if message is not None:
            await message.reply_text("Sorry, that command is for the bot's administrators only.")
        return False

    async def status(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        if not await self._admin(update):
            return
        message = update.effective_message
        assert message is not None
        try:
            health = await self.watchdog.status()
        except WatchdogError as error:
            await message.reply_text(f"No status: {error}.")
            return
        await message.reply_text(format_status(health)[:MESSAGE_LIMIT])

    async def backup(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        if not await self._admin(update):
            return
        message = update.effective_message
        assert message is not None
        await message.reply_text("Taking a backup now…")
        try:
            result = await self.watchdog.backup()
        except WatchdogError as error:
            await message.reply_text(f"The backup failed: {error}.")
            return
        rows = result.get("rows") or {}
        total = sum(v for v in rows.values() if isinstance(v, int)) if isinstance(rows, dict) else 0
        await message.reply_text(
            f"Backup {result.get('id', '?')} done: {human_size(result.get('size_bytes'))}, "
            f"{total:,} rows, sha256 {str(result.get('sha256', '?'))[:12]}…"
        )

    async def backups(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        if not await self._admin(update):
            return
        message = update.effective_message
        assert message is not None
        try:
            listing = await self.watchdog.backups()
        except WatchdogError as error:
            await message.reply_text(f"No list of backups: {error}.")
            return
        await message.reply_text(format_backups(listing)[:MESSAGE_LIMIT])

    # ------------------------------------------------------------------------------ errors
    async def error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Log and carry on; the formatter redacts secrets, and message contents are not logged."""
        error = context.error
        if isinstance(error, codec.UnstorableValue):
            return  # logged once, clearly, by the persistence
        if update is None and isinstance(error, Conflict | NetworkError | RetryAfter):
            # From the polling loop, which retries with backoff (or after retry_after).
            log.warning(
                "polling Telegram failed (%s: %s); retrying with backoff",
                type(error).__name__,
                error,
            )
            return
        update_id = update.update_id if isinstance(update, Update) else None
        log.error(
            "error while handling update %s: %s",
            update_id,
            type(context.error).__name__,
            exc_info=context.error,
        )


def human_size(value: Any) -> str:
    if not isinstance(value, int | float):
        return "? bytes"
    size = float(value)
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"  # pragma: no cover


def human_age(seconds: Any) -> str:
    if not isinstance(seconds, int | float):
        return "?"
    seconds = max(0, int(seconds))
    for unit, span in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= span:
            return f"{seconds // span} {unit} ago"
    return f"{seconds} s ago"


def format_status(health: dict[str, Any]) -> str:
    """The /health document as a few lines; missing parts are skipped, never fatal."""

    def section(name: str) -> dict[str, Any]:
        value = health.get(name)
        return value if isinstance(value, dict) else {}

    database, storage, bot, checks = (
        section("database"),
        section("storage"),
        section("bot"),
        section("checks"),
    )
    lines = [f"Status: {health.get('status', 'unknown')}"]
    if database:
        lines.append(
            f"Database: {database.get('type', '?')}, {database.get('size_mb', '?')} MB, "
            f"integrity {database.get('integrity', '?')}, "
            f"last backup {database.get('last_backup') or 'never'}"
        )
    if storage:
        lines.append(
            f"Disk: {storage.get('disk_usage_percent', '?')}% used, "
            f"persistent: {storage.get('persistent_disk', '?')}"
        )
    if bot:
        lines.append(
            f"Bot: {bot.get('status', '?')}, pid {bot.get('pid', '?')}, "
            f"restarts {bot.get('restarts', '?')}"
        )
    tiers = section("backups").get("tiers")
    if isinstance(tiers, dict):
        have = [name for name, value in tiers.items() if value]
        lines.append(f"Backups: {', '.join(have) if have else 'none yet'}")
    bad = [
        f"{name} ({check.get('status')}: {check.get('detail', '')})"
        for name, check in checks.items()
        if isinstance(check, dict) and check.get("status") not in ("ok", "healthy", "pass")
    ]
    if checks:
        lines.append(
            f"Checks: {len(checks) - len(bad)} of {len(checks)} ok"
            + (("; " + "; ".join(bad)) if bad else "")
        )
    return "\n".join(lines)


def format_backups(listing: dict[str, Any]) -> str:
    tiers = listing.get("tiers")
    if not isinstance(tiers, dict) or not tiers:
        return "No backups reported."
    lines = ["Newest backup per tier:"]
    for tier, info in tiers.items():
        if not isinstance(info, dict):
            lines.append(f"{tier}: none")
            continue
        lines.append(
            f"{tier}: {info.get('id', '?')}, {human_age(info.get('age_s'))}, "
            f"{human_size(info.get('size_bytes'))}"
        )
    return "\n".join(lines)


def register(
    application: Application,
    storage: Storage,
    db_thread: DatabaseThread,
    *,
    admin_ids: tuple[int, ...] = (),
    watchdog: WatchdogClient | None = None,
    persistence: SQLitePersistence | None = None,
) -> Handlers:
    handlers = Handlers(
        storage, db_thread, admin_ids=admin_ids, watchdog=watchdog, persistence=persistence
    )
    new_messages = filters.UpdateType.MESSAGE  # an edited "/start" is not run twice
    application.add_handler(
        MessageHandler(
            filters.UpdateType.MESSAGE | filters.UpdateType.EDITED_MESSAGE, handlers.record
        ),
        group=TRACKING_GROUP,
    )
    conversation = ConversationHandler(
        entry_points=[CommandHandler("remember", handlers.remember, filters=new_messages)],
        states={
            DRAFTING: [
                MessageHandler(filters.TEXT & ~filters.COMMAND & new_messages, handlers.draft_part),
                CommandHandler("done", handlers.draft_done, filters=new_messages),
            ]
        },
        fallbacks=[CommandHandler("cancel", handlers.draft_cancel, filters=new_messages)],
        allow_reentry=True,
        name=CONVERSATION_NAME,
        persistent=application.persistence is not None,
    )
    application.add_handler(conversation)
    for command, callback in (
        ("start", handlers.start),
        ("help", handlers.help),
        ("notes", handlers.notes),
        ("forget", handlers.forget),
        ("search", handlers.search),
        ("stats", handlers.stats),
        ("export", handlers.export),
        ("deleteme", handlers.deleteme),
        ("done", handlers.no_draft),
        ("cancel", handlers.no_draft),
    ):
        application.add_handler(CommandHandler(command, callback, filters=new_messages))
    for command, callback in (
        ("status", handlers.status),
        ("backup", handlers.backup),
        ("backups", handlers.backups),
    ):
        # Not blocking: a backup takes seconds, and other users' updates go on meanwhile.
        application.add_handler(
            CommandHandler(command, callback, filters=new_messages, block=False)
        )
    application.add_handler(CallbackQueryHandler(handlers.deleteme_answer, pattern=r"^deleteme:"))
    application.add_handler(MessageHandler(filters.COMMAND & new_messages, handlers.unknown))
    application.add_error_handler(handlers.error)
    return handlers


async def publish_commands(application: Application, admin_ids: tuple[int, ...] = ()) -> None:
    """Show the commands in Telegram's menu; a failure here is not worth refusing to start."""
    try:
        await application.bot.set_my_commands([BotCommand(c, d) for c, d in COMMANDS])
    except InvalidToken:
        raise
    except TelegramError as error:
        log.warning("could not publish the command list: %s", error)
        return
    for admin in admin_ids:
        try:
            await application.bot.set_my_commands(
                [BotCommand(c, d) for c, d in COMMANDS + ADMIN_COMMANDS],
                scope=BotCommandScopeChat(admin),
            )
        except InvalidToken:
            raise
        except TelegramError as error:  # e.g. the admin never talked to the bot
            log.info("could not publish the admin commands for %s: %s", admin, error)
