"""The sandbox: a local stand-in for Telegram's Bot API (``bot_api``) with a chat page in the
browser (``chat``), so anyone can talk to the bot with no token and no internet
(``make demo``, which is ``python -m sandbox.demo``). Apart from the watchdog and the bot: it
imports neither, and speaks to the bot only as Telegram would, over HTTP on 127.0.0.1."""
