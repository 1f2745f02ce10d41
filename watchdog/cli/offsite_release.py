"""``python -m watchdog offsite-release``: let offsite pushes rotate old backups away again.

After a fresh start (no usable backup was found, the bot started on an empty database) the
offsite branch may hold the only good copies of the data, so pushes keep every package on it
(beyond BACKUP_GIT_KEEP) until an operator has looked and says so with this command. While the
stack runs, the running watchdog is asked (``POST /offsite/release`` on its loopback admin API);
otherwise the remembered state file is changed here, holding the watchdog's lock.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from watchdog.cli.common import iso, prepare
from watchdog.cli.loopback import exchange
from watchdog.data.fs import AlreadyRunning, InstanceLock
from watchdog.web.admin_endpoint import AdminEndpoint

if TYPE_CHECKING:
    from watchdog.data.remembered import RememberedStore

RELEASE_PATH = "/offsite/release"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "offsite-release",
        help="after a fresh start, let offsite pushes rotate old backups off the branch again",
        description=(
            "After a fresh start the watchdog keeps every offsite backup on the branch (beyond "
            "BACKUP_GIT_KEEP): they may be the only good copies. Once you have restored what you "
            "need (`list --offsite`, `restore --from-git ID`) or decided they are not needed, "
            "this lets pushes rotate again. Works whether or not the stack runs."
        ),
    )
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    parser.set_defaults(handler=command)


def fail(message: str) -> int:
    print(f"watchdog offsite-release: {message}", file=sys.stderr)
    return 1


def confirmed(assume_yes: bool) -> bool:
    what = "let offsite pushes rotate the backups kept since the fresh start off the branch"
    if assume_yes:
        return True
    if not sys.stdin.isatty():
        print(f"watchdog offsite-release: would {what}; add --yes to do it", file=sys.stderr)
        return False
    return input(f"{what}? Type yes to go on: ").strip().lower() == "yes"


def ask_running_watchdog(endpoint: AdminEndpoint) -> tuple[bool, str]:
    """The admin API's ``ok`` and ``message``; OSError or ValueError when it does not answer."""
    headers = {"Authorization": f"Bearer {endpoint.secret}", "Content-Type": "application/json"}
    answer = exchange(endpoint.url, "POST", RELEASE_PATH, headers, b"{}", timeout=30)
    document = json.loads(answer.body)
    if not isinstance(document, dict):
        raise ValueError("the watchdog's answer is not a JSON object")
    return bool(document.get("ok")), str(document.get("message"))


def release_file(store: RememberedStore) -> str:
    """No watchdog runs (the caller holds its lock): forget the fresh start in the state file."""
    held = store.load().fresh_start_at
    if held is None:
        return "no fresh start holds offsite rotation: nothing to release"
    store.update(fresh_start_at=None, fresh_start_reason=None)
    return f"released: offsite rotation (held since the fresh start at {iso(held)}) runs again"


def command(args: argparse.Namespace) -> int:
    _, layout = prepare()
    if not confirmed(args.yes):
        return 1
    lock = InstanceLock(layout.lock_file)
    try:
        lock.acquire()
    except AlreadyRunning:
        endpoint = AdminEndpoint.load(layout.admin_file)
        if endpoint is None:
            return fail(
                "a watchdog holds DATA_DIR but does not answer; stop the stack, then run: "
                "python -m watchdog offsite-release --yes"
            )
        try:
            ok, message = ask_running_watchdog(endpoint)
        except (OSError, ValueError) as error:
            return fail(f"the running watchdog did not answer ({error})")
        if not ok:
            return fail(message)
        print(message)
        return 0
    from watchdog.data.remembered import RememberedStore

    try:
        print(release_file(RememberedStore(layout.state_file)))
    finally:
        lock.release()
    return 0
