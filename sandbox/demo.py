"""``make demo`` (``python -m sandbox.demo``): the whole stack — supervisord, the watchdog, the bot
— against the sandbox's Bot API stand-in, with a chat page in the browser. No token, no
internet: everything listens on 127.0.0.1.

The demo's data lives in ``.demo/data`` (kept between runs, so the bot remembers you; delete the
folder to start over). The demo user is an admin (``ADMIN_IDS``), so ``/status`` and ``/backup``
work from the chat, and the watchdog's alerts arrive there. Hourly backups are taken every 5
minutes so the status page's charts fill while you watch. None of your own settings apply: the
environment's Telegram, backup, offsite and HTTP settings are dropped and no ``.env`` is read.
Ctrl-C stops everything.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import FrameType

from sandbox.bot_api import LocalBotAPI
from sandbox.chat import DEMO_USER, ChatPage

REPO = Path(__file__).resolve().parent.parent
DROPPED_PREFIXES = ("TELEGRAM_", "BACKUP_", "ADMIN_", "STATS_", "RENDER", "HEARTBEAT_")
DROPPED = {"DATA_DIR", "DATABASE_PATH", "PORT", "HOST", "ENV_FILE", "LOG_FORMAT"}


def demo_environment(api: LocalBotAPI, data_dir: Path, port: int) -> dict[str, str]:
    """Ours without any of the operator's own settings, then the demo's."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.upper().startswith(DROPPED_PREFIXES) and key.upper() not in DROPPED
    }
    bin_dir = str(Path(sys.executable).parent)
    env.update(
        PATH=os.pathsep.join(part for part in (bin_dir, env.get("PATH", "")) if part),
        PYTHONUNBUFFERED="1",
        ENV_FILE=os.devnull,
        TELEGRAM_BOT_TOKEN=api.token,
        TELEGRAM_API_URL=api.base_url,
        ADMIN_IDS=str(DEMO_USER["id"]),
        DATA_DIR=str(data_dir),
        HOST="127.0.0.1",
        PORT=str(port),
        BOT_POLL_TIMEOUT="10",
        BACKUP_HOURLY_EVERY="5m",
    )
    return env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sandbox.demo", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--chat-port",
        type=int,
        default=8081,
        help="the chat page and Bot API stand-in (default 8081)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=10000,
        help="the watchdog's HTTP: status page, /health (default 10000)",
    )
    parser.add_argument(
        "--data-dir", type=Path, default=REPO / ".demo" / "data", help="default .demo/data"
    )
    args = parser.parse_args(argv)

    api = LocalBotAPI(
        port=args.chat_port, bot_username="erixcast_demo_bot", bot_first_name="ErixCast"
    )
    api.add_routes(ChatPage(api).install)
    try:
        api.start()
    except OSError as error:
        print(
            f"demo: cannot serve the chat page on 127.0.0.1:{args.chat_port}: {error.strerror}",
            file=sys.stderr,
        )
        return 3
    args.data_dir.mkdir(parents=True, exist_ok=True)
    env = demo_environment(api, args.data_dir.resolve(), args.port)
    print(
        "\n  ErixCast demo\n"
        f"  chat with the bot:  http://127.0.0.1:{api.port}/\n"
        f"  status page:        http://127.0.0.1:{args.port}/\n"
        f"  data:               {args.data_dir}\n"
        "  Ctrl-C stops everything.\n",
        flush=True,
    )
    stack = subprocess.Popen(["sh", str(REPO / "bin" / "start")], cwd=REPO, env=env)
    forwarded = False

    def forward(signum: int, _frame: FrameType | None) -> None:
        nonlocal forwarded
        if not forwarded and stack.poll() is None:
            forwarded = True  # once: supervisord stops the watchdog, which stops the bot
            stack.send_signal(signum)

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, forward)
    try:
        code = stack.wait()
    finally:
        api.stop()
    return code


if __name__ == "__main__":
    raise SystemExit(main())
