"""The backup leader's lock on the server (``rules.leader``): a session-level advisory lock
taken with ``pg_try_advisory_lock`` on a connection of its own, held for as long as that
session lives.

The connection is apart from every other (probes, dumps and drills connect and close), so a
dump or a probe that fails never drops the lock. Both ends watch it: libpq's keepalives here,
the session's ``tcp_keepalives_*`` on the server (so the server ends a vanished leader's session,
and frees the lock, within about half a minute). Its ``application_name`` names the instance,
which is what a follower can read of who leads (``pg_locks`` joined to ``pg_stat_activity``).
Errors leave as ``data.server.ServerError`` (one line, never the password).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from typing import TYPE_CHECKING

from watchdog.data import server as pg
from watchdog.rules import leader as rules

if TYPE_CHECKING:  # imported by a lock's use: never on SQLite
    import psycopg

QUERY_TIMEOUT = 10.0
"""Seconds a ping or a try may take before the connection counts as lost."""
SERVER_KEEPALIVE = (
    "SET tcp_keepalives_idle = 15",
    "SET tcp_keepalives_interval = 5",
    "SET tcp_keepalives_count = 3",
    "SET statement_timeout = '10s'",
    "SET idle_session_timeout = 0",  # PostgreSQL 14+; a server's own limit would end the lock
)
CLIENT_KEEPALIVE = {
    "keepalives": 1,
    "keepalives_idle": 15,
    "keepalives_interval": 5,
    "keepalives_count": 3,
}
HOLDER = (
    "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
    "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = %s AND l.objid = %s "
    "AND l.objsubid = 1 AND l.database = (SELECT oid FROM pg_database "
    "WHERE datname = current_database()) LIMIT 1"
)


def instance_name() -> str:
    """What this watchdog is called on the server (``application_name``, 63 bytes at most)."""
    return f"erixcast-watchdog {socket.gethostname()} pid {os.getpid()}"[:63]


class LeaderLock:
    def __init__(self, server: pg.Server, name: str | None = None) -> None:
        self.server = server
        self.key = rules.lock_key(server.database)
        self.name = name or instance_name()
        self.held = False
        self._connection: psycopg.AsyncConnection | None = None

    async def try_lead(self) -> bool:
        """Hold the lock (True) or learn that another session does (False): a leader's try is
        a ping of its session, a follower's ``pg_try_advisory_lock`` (never stacked on a lock
        already held). Raises ServerError when the connection fails; the lock is then lost."""
        import psycopg

        try:
            connection = await self._open()
            if self.held:
                await self._run(connection, "SELECT 1")
                return True
            row = await self._run(connection, "SELECT pg_try_advisory_lock(%s)", (self.key,))
            self.held = bool(row and row[0])
            return self.held
        except (psycopg.Error, TimeoutError, OSError) as error:
            await self.close()
            if isinstance(error, psycopg.Error):
                raise pg.failure(self.server, error) from None
            raise pg.ServerError(f"{self.server.where}: the lock's connection timed out") from None

    async def holder(self) -> str | None:
        """The leader's ``application_name``, as far as this session may read it."""
        if self._connection is None:
            return None
        import psycopg

        try:
            row = await self._run(self._connection, HOLDER, rules.split_key(self.key))
        except (psycopg.Error, TimeoutError):
            return None
        return str(row[0]) if row and row[0] else None

    async def close(self) -> None:
        """End the session, giving the lock back first when it is held: the server frees a
        closed session's locks only once its backend has gone, a moment later, so another
        instance trying at once could still find it taken."""
        held, self.held = self.held, False
        connection, self._connection = self._connection, None
        if connection is None:
            return
        if held:
            with contextlib.suppress(Exception):
                await self._run(connection, "SELECT pg_advisory_unlock(%s)", (self.key,))
        with contextlib.suppress(Exception):
            await asyncio.wait_for(connection.close(), QUERY_TIMEOUT)

    async def _open(self) -> psycopg.AsyncConnection:
        import psycopg

        if self._connection is not None and not self._connection.closed:
            return self._connection
        self.held = False
        params = {**self.server.params, **CLIENT_KEEPALIVE, "application_name": self.name}
        connection = await asyncio.wait_for(
            psycopg.AsyncConnection.connect(
                **params, connect_timeout=pg.CONNECT_TIMEOUT, autocommit=True
            ),
            pg.CONNECT_TIMEOUT + QUERY_TIMEOUT,
        )
        for statement in SERVER_KEEPALIVE:
            with contextlib.suppress(psycopg.errors.UndefinedObject):
                await self._run(connection, statement)
        self._connection = connection
        return connection

    @staticmethod
    async def _run(
        connection: psycopg.AsyncConnection, query: str, params: tuple[object, ...] = ()
    ) -> tuple[object, ...] | None:
        async def run() -> tuple[object, ...] | None:
            cursor = await connection.execute(query, params or None)
            return await cursor.fetchone() if cursor.description else None

        return await asyncio.wait_for(run(), QUERY_TIMEOUT)
