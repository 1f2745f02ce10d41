"""The outbox: messages decided while an update was handled, stored in that update's
transaction and deleted once sent (see :mod:`bot.delivery`).

On a server shared by several instances each row is also *claimed*: ``outbox_claims`` names
the instance sending it and until when its lease holds (the server's clock, so the instances'
clocks need not agree). The claim is written with the row, in the update's transaction, so no
other instance ever sees the row unclaimed; the sender renews its leases while it lives, and
another instance takes a row over only once its lease expired (``FOR UPDATE SKIP LOCKED``: two
instances never take the same row). On SQLite (one instance) nothing is claimed: every row
found at start is sent again, as always.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import text

from bot.storage.base import StorageBase
from bot.storage.values import timestamp

log = logging.getLogger(__name__)

OUTBOX_LOADED_AT_START = 10_000
"""At most this many stored messages are sent again after a restart, the oldest first."""
LEASE_SECONDS = 20.0
"""How long a claim holds without renewal: after a kill -9, another instance sends the killed
one's messages this long (and one sweep) later."""
NOW_MS = "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)"
"""The server's clock in milliseconds (PostgreSQL; leases are a server's only)."""

Pending = tuple[int, int, str, dict[str, Any]]
"""``(id, chat_id, method, params)`` of a stored message."""

_TAKE = text(
    f"""
    UPDATE outbox_claims SET claimed_by = :me, expires_ms = {NOW_MS} + :lease
    WHERE id IN (
        SELECT id FROM outbox_claims WHERE expires_ms < {NOW_MS}
        ORDER BY id LIMIT :n FOR UPDATE SKIP LOCKED
    )
    RETURNING id
    """
)
_UNCLAIMED = text(
    """
    INSERT INTO outbox_claims (id, claimed_by, expires_ms)
    SELECT o.id, '', 0 FROM outbox o
    WHERE NOT EXISTS (SELECT 1 FROM outbox_claims c WHERE c.id = o.id)
    ON CONFLICT (id) DO NOTHING
    """
)


_ADD = (
    "INSERT INTO outbox (chat_id, method, params, created_at) "
    "VALUES (:chat_id, :method, :params, :now) RETURNING id"
)
_LARGEST_ROWID = 2**63 - 1
_ADD_ON_SQLITE = (
    "INSERT INTO outbox (id, chat_id, method, params, created_at) VALUES ("
    f"(SELECT CASE WHEN max(id) >= {_LARGEST_ROWID} THEN NULL "
    "ELSE max(coalesce(max(id), 0) + 1, :floor) END FROM outbox), "
    ":chat_id, :method, :params, :now) RETURNING id"
)
"""Above every id stored or given in this run; when the largest rowid is taken (a file from
elsewhere), SQLite picks a free one itself."""


class OutboxStore(StorageBase):
    outbox_owner: str | None = None
    """On a server: this instance's name, which claims the rows it writes (None: no claims)."""

    _outbox_floor: int = 1
    """On SQLite, the lowest id this process may give a new row: one above the last it gave."""

    def outbox_add(self, chat_id: int, method: str, params: dict[str, Any], now: datetime) -> int:
        """Store one message to send (claimed by this instance on a server); its row id. Joins
        the open batch.

        An id is never given twice in a process: SQLite alone gives a new row the id of the
        newest deleted one, and a message whose row was just cleared may still be in its lane,
        so two messages in flight would share an id (a reply was once skipped as a duplicate
        that way, unsent until the next start). PostgreSQL's identity never reuses one."""
        values = {
            "chat_id": int(chat_id),
            "method": method,
            "params": json.dumps(params, ensure_ascii=False, separators=(",", ":")),
            "now": timestamp(now),
            "floor": self._outbox_floor,
        }
        with self.db:
            if self.is_sqlite:
                result = self._run(text(_ADD_ON_SQLITE), values).scalar_one()
                self._outbox_floor = min(int(result) + 1, _LARGEST_ROWID)
            else:
                result = self._run(text(_ADD), values).scalar_one()
            if self.outbox_owner is not None:
                self._run(
                    text(
                        "INSERT INTO outbox_claims (id, claimed_by, expires_ms) "
                        f"VALUES (:id, :me, {NOW_MS} + :lease)"
                    ),
                    {"id": int(result), "me": self.outbox_owner, "lease": _lease_ms()},
                )
        return int(result)

    def outbox_done(self, ids: Iterable[int]) -> None:
        wanted = [int(i) for i in ids]
        if not wanted:
            return
        if self.outbox_owner is None:
            with self.db:
                self._delete(self.db.executable, wanted)
            return
        with self._own_transaction() as conn:
            self._delete(conn, wanted)

    @staticmethod
    def _delete(conn: sa.Connection, ids: list[int]) -> None:
        for row_id in ids:
            conn.execute(text("DELETE FROM outbox WHERE id = :id"), {"id": row_id})
            conn.execute(text("DELETE FROM outbox_claims WHERE id = :id"), {"id": row_id})

    def outbox_pending(
        self, methods: Iterable[str], limit: int = OUTBOX_LOADED_AT_START
    ) -> list[Pending]:
        """What is still to send, oldest first. A row that is not one of ours (another method,
        parameters that are not a JSON object) is left out and deleted: it can only be damage,
        and sending it could only do harm."""
        with self.db:
            found = self._rows(
                text("SELECT id, chat_id, method, params FROM outbox ORDER BY id LIMIT :n"),
                {"n": int(limit)},
            )
        return self._valid(found, methods)

    def _valid(self, found: list[dict[str, Any]], methods: Iterable[str]) -> list[Pending]:
        allowed = set(methods)
        rows: list[Pending] = []
        damaged = []
        for row in found:
            try:
                params = json.loads(row["params"])
                chat_id = int(row["chat_id"])
            except (TypeError, ValueError):
                params, chat_id = None, 0
            if row["method"] not in allowed or not isinstance(params, dict):
                damaged.append(int(row["id"]))
                continue
            rows.append((int(row["id"]), chat_id, str(row["method"]), params))
        if damaged:
            log.warning("dropping %d outbox rows that are not the bot's messages", len(damaged))
            self.outbox_done(damaged)
        return rows

    # -- leases (a server shared by instances) ---------------------------------------------

    def _own_transaction(self) -> Any:
        """A transaction of its own, on a connection of its own: a lease is renewed or taken
        at once, whatever batch this thread's connection has open."""
        return self.db.engine.begin()

    def outbox_take(
        self, methods: Iterable[str], limit: int = OUTBOX_LOADED_AT_START
    ) -> list[Pending]:
        """Claim for this instance every row whose lease expired (or that has no claim: a row
        from before claims), oldest first, and return them to send."""
        assert self.outbox_owner is not None
        with self._own_transaction() as conn:
            conn.execute(_UNCLAIMED)
            taken = [
                int(row[0])
                for row in conn.execute(
                    _TAKE, {"me": self.outbox_owner, "lease": _lease_ms(), "n": int(limit)}
                )
            ]
            found = []
            if taken:
                found = [
                    dict(row)
                    for row in conn.execute(
                        text(
                            "SELECT id, chat_id, method, params FROM outbox "
                            "WHERE id = ANY(:ids) ORDER BY id"
                        ),
                        {"ids": taken},
                    ).mappings()
                ]
                gone = set(taken) - {int(row["id"]) for row in found}
                for row_id in gone:  # its message was deleted (sent, or erased)
                    conn.execute(text("DELETE FROM outbox_claims WHERE id = :id"), {"id": row_id})
        return self._valid(found, methods)

    def outbox_renew(self) -> int:
        """Extend the leases of every row this instance holds; how many."""
        assert self.outbox_owner is not None
        with self._own_transaction() as conn:
            result = conn.execute(
                text(
                    f"UPDATE outbox_claims SET expires_ms = {NOW_MS} + :lease "
                    "WHERE claimed_by = :me"
                ),
                {"me": self.outbox_owner, "lease": _lease_ms()},
            )
        return int(result.rowcount or 0)

    def outbox_release(self) -> int:
        """At a clean stop: this instance's leases end now, so the rows it did not send are
        taken by the next sweep of any instance (its own next start included)."""
        assert self.outbox_owner is not None
        with self._own_transaction() as conn:
            result = conn.execute(
                text("UPDATE outbox_claims SET expires_ms = 0 WHERE claimed_by = :me"),
                {"me": self.outbox_owner},
            )
        return int(result.rowcount or 0)


def _lease_ms() -> int:
    return int(LEASE_SECONDS * 1000)
