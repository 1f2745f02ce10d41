"""The live workload: a few users writing to the bot at a steady rate — text messages mostly, and
``/remember <text>``, ``/remember`` … parts … ``/done``, ``/notes``, ``/start`` — each update's
``update_id`` known; and the probes that tell the bot answers."""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field

from tests.chaos.fakeapi import RecordingTelegramAPI

PROBE_UID = 700_777
FIRST_UID = 500_001


@dataclass(frozen=True)
class Sent:
    update_id: int
    user_id: int
    kind: str
    """text, note (``/remember <text>``), draft (``/remember``), part, done, notes, start, probe"""
    text: str
    at: float
    """``time.time()`` when queued at the fake Bot API."""
    note: str | None = None
    """The note text this update should save (``/remember <text>`` and ``/done``)."""


@dataclass
class _User:
    uid: int
    drafting: list[str] | None = None
    n: int = 0


@dataclass
class Workload:
    fake: RecordingTelegramAPI
    seed: int
    users: int = 6
    rate: float = 5.0
    """Updates per second, all users together."""
    drafts: bool = True
    """``/remember`` … parts … ``/done`` conversations (state in the bot's persistence)."""
    sent: dict[int, Sent] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _probes: int = 0

    def __post_init__(self) -> None:
        self._rng = random.Random(f"workload-{self.seed}")
        self._users = [_User(FIRST_UID + i) for i in range(self.users)]

    # ----------------------------------------------------------------------------- life
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="chaos-workload", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        interval = 1.0 / self.rate
        next_at = time.monotonic()
        while not self._stop.is_set():
            self.send_one()
            next_at += interval
            delay = next_at - time.monotonic()
            if delay < -5 * interval:  # fell behind (a paused machine): do not burst
                next_at = time.monotonic()
            elif delay > 0:
                self._stop.wait(delay)  # pacing, not a wait for a condition

    # -------------------------------------------------------------------------- updates
    def _send(self, uid: int, kind: str, text: str, note: str | None = None) -> Sent:
        at = time.time()
        update_id = self.fake.send_text(uid, text, first_name=f"User{uid}")
        record = Sent(update_id, uid, kind, text, at, note)
        with self._lock:
            self.sent[update_id] = record
        return record

    def send_one(self) -> Sent:
        user = self._rng.choice(self._users)
        user.n += 1
        tag = f"u{user.uid}-{user.n}"
        if user.drafting is not None:
            if len(user.drafting) >= self._rng.randint(1, 3):
                note = "\n".join(user.drafting)
                user.drafting = None
                return self._send(user.uid, "done", "/done", note)
            part = f"part {tag} {self._rng.choice(WORDS)}"
            user.drafting.append(part)
            return self._send(user.uid, "part", part)
        roll = self._rng.random()
        if roll < 0.62:
            words = " ".join(self._rng.choice(WORDS) for _ in range(self._rng.randint(2, 12)))
            return self._send(user.uid, "text", f"msg {tag} {words}")
        if roll < 0.74:
            note = f"note {tag} {self._rng.choice(WORDS)}"
            return self._send(user.uid, "note", f"/remember {note}", note)
        if roll < 0.84 and self.drafts:
            user.drafting = []
            return self._send(user.uid, "draft", "/remember")
        if roll < 0.95:
            return self._send(user.uid, "notes", "/notes")
        return self._send(user.uid, "start", "/start")

    def probe(self) -> tuple[Sent, str]:
        """A ``/start`` from the probe user, named uniquely: the reply greets that name."""
        with self._lock:
            self._probes += 1
            name = f"Probe{self._probes:05d}"
        at = time.time()
        update_id = self.fake.send_text(PROBE_UID, "/start", first_name=name)
        record = Sent(update_id, PROBE_UID, "probe", "/start", at)
        with self._lock:
            self.sent[update_id] = record
        return record, name

    def answered(self, name: str) -> bool:
        return any(name in (r.get("text") or "") for r in self.fake.sent(PROBE_UID))

    def snapshot(self) -> dict[int, Sent]:
        with self._lock:
            return dict(self.sent)


WORDS = [
    "milk",
    "bread",
    "river",
    "stone",
    "cloud",
    "garden",
    "yellow",
    "window",
    "paper",
    "music",
    "letter",
    "orange",
    "winter",
    "coffee",
    "train",
    "forest",
    "candle",
    "mirror",
    "silver",
    "market",
    "island",
    "summer",
    "pencil",
    "rocket",
    "velvet",
    "harbour",
]
