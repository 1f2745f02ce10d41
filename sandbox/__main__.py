"""``python -m sandbox``: the Bot API stand-in and its chat page alone, as their own process (the
bot started by hand against it). ``make demo`` starts the whole stack instead."""

from __future__ import annotations

import argparse
import signal
import threading

from sandbox.bot_api import LocalBotAPI
from sandbox.chat import ChatPage


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sandbox",
        description="A local stand-in for Telegram's Bot API, with a chat page at / "
        "(127.0.0.1 only). Prints one line: base_url=… token=… control=… chat=…",
    )
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--token", default=None, help="the accepted token (default: random)")
    args = parser.parse_args()

    done = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: done.set())
    api = LocalBotAPI(args.token, port=args.port)
    api.add_routes(ChatPage(api).install)
    with api:
        # One line a driver can parse: where to point the bot, and the token to give it.
        print(
            f"base_url={api.base_url} token={api.token} control={api.control_url} "
            f"chat=http://{api.host}:{api.port}/",
            flush=True,
        )
        done.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
