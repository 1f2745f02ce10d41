"""Run the fake Telegram Bot API as its own process: ``python -m tests.fakes --port 8081``."""

from __future__ import annotations

import argparse
import signal
import threading

from tests.fakes.telegram_api import FakeTelegramAPI


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fakes", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--token", default=None, help="the accepted token (default: random)")
    args = parser.parse_args()

    done = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: done.set())
    with FakeTelegramAPI(args.token, host=args.host, port=args.port) as fake:
        # One line a driver can parse: where to point the bot, and the token to give it.
        print(f"base_url={fake.base_url} token={fake.token} control={fake.control_url}", flush=True)
        done.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
