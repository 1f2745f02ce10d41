"""The account of every acknowledged update, read from the final database (read-only, after the
clean stop).

An update is *acknowledged* once the bot asked ``getUpdates`` for an offset past it (the fake Bot
API recorded when). It is *present* when the final database has its ``update_id`` (in
``processed_updates`` or ``messages.update_id``) and, for ``/remember <text>``, the note itself.
Each acknowledged update that is not present is *lost*, and classified:

- **within a destroyed-data window**: acknowledged after the newest good backup taken before a
  data-destroying fault whose kind is in ``WINDOW_EXCUSED``, and before that fault (for a lost
  disk, also within ``LOST_DISK_WINDOW`` of it: older ones the journal on the branch holds);
- **otherwise**, with the nearest reason: in the window of a fault whose kind is not excused;
  acknowledged after a data-destroying fault and before the stack had recovered from it; or no
  fault at all explains it.

Double effects: a note stored twice for one ``/remember`` (same user, same text), an update's
message stored twice; and, for information, users whose message counter exceeds the messages
stored for them.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tests.chaos.faults import LOST_DISK_WINDOW, WINDOW_EXCUSED
from tests.chaos.workload import Sent


@dataclass(frozen=True)
class Window:
    """What a data-destroying fault may have cost: from the newest good backup before it (None:
    there was none) to the fault itself; ``recovered_at`` ends what came after it."""

    kind: str
    number: int
    start: float | None
    fault_at: float
    recovered_at: float | None

    @property
    def excused(self) -> bool:
        return self.kind in WINDOW_EXCUSED

    def holds(self, at: float) -> bool:
        if self.kind == "lost_disk" and at < self.fault_at - LOST_DISK_WINDOW:
            return False  # the journal on the branch holds it: losing it is not excused
        return (self.start is None or at >= self.start) and at < self.fault_at

    def after_fault(self, at: float) -> bool:
        return at >= self.fault_at and (self.recovered_at is None or at < self.recovered_at)

    def name(self) -> str:
        return f"{self.kind} #{self.number}"


@dataclass(frozen=True)
class Lost:
    update: Sent
    acked_at: float
    reason: str
    excused: bool
    note_only: bool = False
    """The update_id is recorded but the note it saved is not."""


@dataclass
class Account:
    sent: int = 0
    acknowledged: int = 0
    present: int = 0
    unacknowledged: list[int] = field(default_factory=list)
    lost: list[Lost] = field(default_factory=list)
    double_notes: list[tuple[int, str, int]] = field(default_factory=list)
    double_messages: list[tuple[int, int]] = field(default_factory=list)
    overcounted_users: list[tuple[int, int, int]] = field(default_factory=list)
    database_error: str | None = None

    @property
    def lost_in_window(self) -> list[Lost]:
        return [lost for lost in self.lost if lost.excused]

    @property
    def lost_otherwise(self) -> list[Lost]:
        return [lost for lost in self.lost if not lost.excused]

    @property
    def double_effects(self) -> int:
        return len(self.double_notes) + len(self.double_messages)

    def reasons(self) -> Counter[str]:
        return Counter(lost.reason for lost in self.lost_otherwise)


def read_database(path: Path) -> tuple[set[int], dict[int, set[str]], sqlite3.Connection]:
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    ids = {row[0] for row in connection.execute("SELECT update_id FROM processed_updates")}
    ids |= {
        row[0]
        for row in connection.execute("SELECT update_id FROM messages WHERE update_id IS NOT NULL")
    }
    notes: dict[int, set[str]] = {}
    for user_id, text in connection.execute("SELECT user_id, text FROM notes"):
        notes.setdefault(int(user_id), set()).add(text)
    return ids, notes, connection


def account(
    database: Path,
    sent: dict[int, Sent],
    acked_at: dict[int, float],
    windows: list[Window],
) -> Account:
    result = Account(sent=len(sent), acknowledged=len(acked_at))
    result.unacknowledged = sorted(set(sent) - set(acked_at))
    try:
        ids, notes, connection = read_database(database)
    except sqlite3.Error as error:
        result.database_error = f"{type(error).__name__}: {error}"
        ids, notes, connection = set(), {}, None
    try:
        for update_id, at in sorted(acked_at.items()):
            update = sent[update_id]
            recorded = update_id in ids
            note_ok = update.kind != "note" or update.note in notes.get(update.user_id, set())
            if recorded and note_ok:
                result.present += 1
                continue
            reason, excused = classify(at, windows)
            result.lost.append(Lost(update, at, reason, excused, note_only=recorded))
        if connection is not None:
            double_effects(connection, result)
    finally:
        if connection is not None:
            with contextlib.suppress(sqlite3.Error):
                connection.close()
    return result


def classify(at: float, windows: list[Window]) -> tuple[str, bool]:
    for window in windows:
        if window.excused and window.holds(at):
            return f"in the window of {window.name()}", True
    for window in windows:
        if window.holds(at):
            return f"in the window of {window.name()} (not excused)", False
    for window in windows:
        if window.after_fault(at):
            return f"acknowledged after {window.name()}, before its recovery", False
    return "no fault explains it", False


def double_effects(connection: sqlite3.Connection, result: Account) -> None:
    result.double_notes = [
        (int(user), str(text), int(count))
        for user, text, count in connection.execute(
            "SELECT user_id, text, count(*) FROM notes GROUP BY user_id, text HAVING count(*) > 1"
        )
    ]
    result.double_messages = [
        (int(update), int(count))
        for update, count in connection.execute(
            "SELECT update_id, count(*) FROM messages WHERE update_id IS NOT NULL "
            "GROUP BY update_id HAVING count(*) > 1"
        )
    ]
    result.overcounted_users = [
        (int(user), int(counted), int(stored))
        for user, counted, stored in connection.execute(
            "SELECT u.id, u.message_count, (SELECT count(*) FROM messages m "
            "WHERE m.user_id = u.id) AS stored FROM users u WHERE u.message_count > "
            "(SELECT count(*) FROM messages m WHERE m.user_id = u.id)"
        )
    ]
