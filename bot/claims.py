"""Claiming an update before handling it, for webhook mode, where the same update can reach two
instances at once (Telegram redelivers to whichever instance the load balancer picks while the
first is still working on it).

``is_processed`` then commit (the polling path) lets both instances pass the check and both
commit effects. A claim is the ``processed_updates`` row itself, inserted first inside the
update's own transaction: ``INSERT … ON CONFLICT DO NOTHING RETURNING``. On PostgreSQL a second
transaction inserting the same key waits for the first: it conflicts once that one commits (the
update is done, skip it) and inserts once it rolls back (handle it). The row commits with the
update's effects, or not at all.

Holding a claim means holding a lock until commit, so in webhook mode on PostgreSQL a
transaction holds one update (``bot.processor``): two instances' batches claiming overlapping
ids in different orders would otherwise wait on each other (a deadlock, one batch aborted), and
a wait for a batch would stall every update behind it. The wait is bounded
(``CLAIM_LOCK_TIMEOUT``): an instance wedged with the claim open does not wedge the others.

The SQL belongs with :mod:`bot.storage.batches` (asked of its owner); it is portable, and runs on
the connection of the open batch.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import exc, text

from bot.storage import Storage, timestamp

CLAIM_LOCK_TIMEOUT = "5s"

_CLAIM = text(
    """
    INSERT INTO processed_updates (update_id, processed_at) VALUES (:update_id, :now)
    ON CONFLICT (update_id) DO NOTHING
    RETURNING update_id
    """
)
_LOCK_TIMEOUT = text("SELECT set_config('lock_timeout', :timeout, true)")


class Claim(enum.Enum):
    MINE = "mine"
    """Inserted: handle the update; the row commits with its effects."""
    DONE = "done"
    """Committed before (here or by another instance): skip it, it is durable."""
    BUSY = "busy"
    """Another transaction still holds it past the timeout: the batch was rolled back (it held
    only this claim); Telegram is answered with an error and delivers it again."""


def claim_update(storage: Storage, update_id: int, now: datetime) -> Claim:
    """On the database thread: open the batch if need be and claim ``update_id`` in it."""
    storage.begin_batch()
    connection = storage.db.executable
    if not storage.is_sqlite:
        connection.execute(_LOCK_TIMEOUT, {"timeout": CLAIM_LOCK_TIMEOUT})
    try:
        row = connection.execute(
            _CLAIM, {"update_id": int(update_id), "now": timestamp(now)}
        ).first()
    except exc.OperationalError as error:
        if _lock_not_available(error):
            storage.rollback_batch()
            return Claim.BUSY
        raise
    if not storage.is_sqlite:
        connection.execute(_LOCK_TIMEOUT, {"timeout": "0"})
    return Claim.MINE if row is not None else Claim.DONE


def _lock_not_available(error: exc.DBAPIError) -> bool:
    return getattr(error.orig, "sqlstate", None) == "55P03"
