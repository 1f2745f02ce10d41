"""Per-user limits, as plain decisions over plain data and an injected clock: how fast a user may
send (a token bucket per user) and how much of the database their messages and notes may fill
(a quota, counted once per user from the database and then kept here as they write).

No I/O here: the handlers ask, do what the answer says, and tell these books what they stored.
"""

from __future__ import annotations

import enum
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

ROW_BYTES = 64
"""What the quota counts for a stored row besides its text: a photo or a sticker grows the
database too. Text counts by its UTF-8 bytes."""
MB = 1024 * 1024


def stored_size(text: str | None) -> int:
    """What one message or note counts against the quota (the same sum as
    ``Storage.stored_bytes`` makes in SQL)."""
    return ROW_BYTES + (len(text.encode("utf-8", "surrogatepass")) if text else 0)


@dataclass(frozen=True)
class LimitSettings:
    per_minute: float
    burst: int
    quota_bytes: int

    @classmethod
    def defaults(cls) -> LimitSettings:
        """What ``conf/settings.py`` gives when nothing is set."""
        from types import SimpleNamespace

        from conf.settings import BOT_LIMIT_SETTINGS, FIELDS

        return cls.from_settings(
            SimpleNamespace(**{name: FIELDS[name].default for name in BOT_LIMIT_SETTINGS})
        )

    @classmethod
    def from_settings(cls, settings: Any) -> LimitSettings:
        return cls(
            per_minute=float(settings.rate_limit_per_minute),
            burst=int(settings.rate_limit_burst),
            quota_bytes=int(settings.user_quota_mb * MB),
        )


class Verdict(enum.Enum):
    PASS = "pass"
    TELL = "tell"
    """Refused, and the first refusal of this episode: say so once."""
    QUIET = "quiet"
    """Refused again in the same episode: say nothing."""


@dataclass
class _Bucket:
    tokens: float
    at: float
    told: bool = False


class RateLimiter:
    """A token bucket per user: ``burst`` updates at once, refilled at ``per_minute``.

    An episode begins with the first refused update and lasts until the user's bucket is full
    again (they stopped for a while): one notice per episode, however the user keeps on at the
    edge of the rate. Users whose bucket is full are forgotten when more than ``max_users``
    are kept (a full bucket is what a new user gets), so memory follows the active users only.
    """

    def __init__(
        self,
        per_minute: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        max_users: int = 10_000,
    ) -> None:
        if per_minute <= 0 or burst < 1:
            raise ValueError("a rate limit needs a positive rate and a burst of at least 1")
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self.clock = clock
        self.max_users = max_users
        self._prune_at = max_users
        self._buckets: dict[int, _Bucket] = {}

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, user_id: int) -> Verdict:
        now = self.clock()
        bucket = self._buckets.get(user_id)
        if bucket is None:
            if len(self._buckets) >= self._prune_at:
                self._prune(now)
            bucket = self._buckets[user_id] = _Bucket(self.burst, now)
        else:
            self._refill(bucket, now)
        if bucket.tokens >= self.burst:
            bucket.told = False  # rested: a new episode may begin
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return Verdict.PASS
        if bucket.told:
            return Verdict.QUIET
        bucket.told = True
        return Verdict.TELL

    def wait_seconds(self, user_id: int) -> int:
        """Whole seconds until the user may send again (0: now)."""
        bucket = self._buckets.get(user_id)
        if bucket is None:
            return 0
        self._refill(bucket, self.clock())
        return max(0, math.ceil((1 - bucket.tokens) / self.rate))

    def forget(self, user_id: int) -> None:
        self._buckets.pop(user_id, None)

    def _refill(self, bucket: _Bucket, now: float) -> None:
        bucket.tokens = min(self.burst, bucket.tokens + max(0.0, now - bucket.at) * self.rate)
        bucket.at = now

    def _prune(self, now: float) -> None:
        for user_id, bucket in list(self._buckets.items()):
            self._refill(bucket, now)
            if bucket.tokens >= self.burst:
                del self._buckets[user_id]
        # All of them active: do not scan again before the table has doubled.
        self._prune_at = max(self.max_users, 2 * len(self._buckets))


class QuotaBook:
    """Bytes of each user's stored messages and notes (see :func:`stored_size`), once counted.

    The handlers count a user from the database the first time they write (``set``), then add
    what each write stores. At most ``max_users`` are kept; the least recently used is dropped
    and simply counted again when they next write."""

    def __init__(
        self,
        limit_bytes: int,
        clock: Callable[[], float] = time.monotonic,
        notice_every: float = 3600.0,
        max_users: int = 50_000,
    ) -> None:
        if limit_bytes <= 0:
            raise ValueError("a quota must be positive")
        self.limit = int(limit_bytes)
        self.clock = clock
        self.notice_every = notice_every
        self.max_users = max_users
        self._used: OrderedDict[int, int] = OrderedDict()
        self._told_at: dict[int, float] = {}

    def known(self, user_id: int) -> bool:
        return user_id in self._used

    def used(self, user_id: int) -> int | None:
        return self._used.get(user_id)

    def set(self, user_id: int, used: int) -> None:
        self._used[user_id] = max(0, int(used))
        self._used.move_to_end(user_id)
        while len(self._used) > self.max_users:
            dropped, _ = self._used.popitem(last=False)
            self._told_at.pop(dropped, None)

    def add(self, user_id: int, delta: int) -> None:
        """A write of ``delta`` bytes (negative: freed). Unknown users stay unknown: they are
        counted from the database, where the write already is, when next asked."""
        if user_id in self._used:
            self._used[user_id] = max(0, self._used[user_id] + int(delta))
            self._used.move_to_end(user_id)

    def allows(self, user_id: int, extra: int) -> bool:
        """Whether storing ``extra`` more bytes keeps the (known) user within the quota."""
        used = self._used.get(user_id)
        if used is None:
            raise KeyError(f"user {user_id} has not been counted")
        return used + max(0, extra) <= self.limit

    def should_tell(self, user_id: int) -> bool:
        """For refusals nobody asked about (a plain message): tell once, then at most once per
        ``notice_every``. A command refused is always answered by its handler."""
        now = self.clock()
        last = self._told_at.get(user_id)
        if last is not None and now - last < self.notice_every:
            return False
        self._told_at[user_id] = now
        return True

    def forget(self, user_id: int) -> None:
        self._used.pop(user_id, None)
        self._told_at.pop(user_id, None)


@dataclass
class UserLimits:
    """What the handlers share: the settings, the rate limiter (None while replaying: a
    replayed update was acknowledged once already) and the quota book."""

    settings: LimitSettings
    rate: RateLimiter | None
    quota: QuotaBook
    exports_in_progress: set[int] = field(default_factory=set)

    @classmethod
    def build(
        cls,
        settings: LimitSettings,
        *,
        replaying: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> UserLimits:
        rate = None if replaying else RateLimiter(settings.per_minute, settings.burst, clock)
        return cls(settings, rate, QuotaBook(settings.quota_bytes, clock))

    def forget(self, user_id: int) -> None:
        """The user was erased: nothing of theirs is counted any more (their rate stays: an
        erasure is no way around it)."""
        self.quota.forget(user_id)
