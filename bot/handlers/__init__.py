"""What the bot answers, by feature: the history (:mod:`.history`), notes and search
(:mod:`.notes`), the user's account (:mod:`.account`), administrators' commands
(:mod:`.admin`) and errors (:mod:`.errors`); :mod:`.routing` registers them, :mod:`.commands`
publishes the command menu. Handlers reach the database through the storage given to
:func:`register`.

Personal commands work in a private chat only (a group would see the answers).
"""

from __future__ import annotations

from bot.handlers.commands import ADMIN_COMMANDS, COMMANDS, publish_commands
from bot.handlers.routing import register

__all__ = ["ADMIN_COMMANDS", "COMMANDS", "publish_commands", "register"]
