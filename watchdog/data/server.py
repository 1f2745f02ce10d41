"""A PostgreSQL server database as the watchdog reaches it: the address (never the password),
a probe (connection, server version), row counts, emptiness, scratch databases.

Every connection goes through :func:`connect`; every error leaving this module is a
:class:`ServerError` whose text went through :meth:`Server.scrub`, so no password or full URL
reaches a log line, /health or an alert.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from watchdog.rules import server as rules

if TYPE_CHECKING:  # psycopg (9 MB) is imported when a server is used: never on SQLite
    import psycopg

CONNECT_TIMEOUT = 10
"""Seconds a connection attempt may take (a down host must not stall a probe)."""
SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast")


class ServerError(Exception):
    """The server could not be used; ``kind`` as ``rules.server.Verdict``'s."""

    def __init__(self, line: str, kind: str = "unreachable") -> None:
        super().__init__(line)
        self.kind = kind


@dataclass(frozen=True)
class Server:
    """One database on one server, from a ``postgresql://`` URL."""

    params: dict[str, Any] = field(repr=False)

    @classmethod
    def from_url(cls, url: str) -> Server:
        import psycopg
        from psycopg.conninfo import conninfo_to_dict

        try:
            params = conninfo_to_dict(url)
        except psycopg.ProgrammingError:
            raise ServerError(
                "DATABASE_URL is not a PostgreSQL connection URL", "refused"
            ) from None
        return cls({k: v for k, v in params.items() if v is not None})

    @property
    def host(self) -> str:
        return str(self.params.get("host") or "localhost")

    @property
    def port(self) -> int:
        try:
            return int(self.params.get("port") or 5432)
        except ValueError:
            return 5432

    @property
    def database(self) -> str:
        return str(self.params.get("dbname") or self.params.get("user") or "postgres")

    @property
    def user(self) -> str:
        return str(self.params.get("user") or "")

    @property
    def password(self) -> str | None:
        value = self.params.get("password")
        return str(value) if value else None

    @property
    def where(self) -> str:
        return f"PostgreSQL at {self.host}:{self.port}/{self.database}"

    def describe(self) -> dict[str, Any]:
        """What /health may show: host, port, database name (no user, no password)."""
        return {"host": self.host, "port": self.port, "database": self.database}

    def other(self, database: str) -> Server:
        """The same server and credentials, another database."""
        return Server({**self.params, "dbname": database})

    def conninfo(self) -> str:
        """A libpq connection string without the password (for a tool's ``-d``)."""
        from psycopg.conninfo import make_conninfo

        return make_conninfo(**{k: v for k, v in self.params.items() if k != "password"})

    def tool_environment(self, base: dict[str, str]) -> dict[str, str]:
        """The environment of a libpq tool: the password through ``PGPASSWORD`` only."""
        env = {k: v for k, v in base.items() if not k.startswith("PG")}
        if self.password:
            env["PGPASSWORD"] = self.password
        return env

    def scrub(self, text: str) -> str:
        if self.password:
            text = text.replace(self.password, "***")
        return text


@contextlib.contextmanager
def connect(server: Server, *, autocommit: bool = True) -> Iterator[psycopg.Connection]:
    """A connection, or ServerError in one line (``rules.server.connect_failure``)."""
    import psycopg

    try:
        connection = psycopg.connect(
            **server.params, connect_timeout=CONNECT_TIMEOUT, autocommit=autocommit
        )
    except psycopg.Error as error:
        raise failure(server, error) from None
    try:
        yield connection
    finally:
        connection.close()


def failure(server: Server, error: psycopg.Error) -> ServerError:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    first = lines[0].rsplit(" failed: ", 1)[-1] if lines else type(error).__name__
    message = server.scrub(first.removeprefix("FATAL:").strip())
    verdict = rules.connect_failure(server.where, error.sqlstate, message)
    return ServerError(verdict.line, verdict.kind)


@dataclass(frozen=True)
class Probe:
    version_num: int
    version: str
    size_bytes: int
    seconds: float


def probe(server: Server) -> Probe:
    """Connect, read the server's version and the database's size; ServerError (one line)
    when it cannot be reached, refuses us, or is too old for the bot."""
    import psycopg

    started = time.monotonic()
    with connect(server) as connection:
        try:
            row = connection.execute(
                "SELECT current_setting('server_version_num')::int, "
                "current_setting('server_version'), pg_database_size(current_database())"
            ).fetchone()
        except psycopg.Error as error:
            raise failure(server, error) from None
    assert row is not None
    verdict = rules.server_fit(int(row[0]))
    if not verdict.ok:
        raise ServerError(f"{server.where}: {verdict.line}", verdict.kind)
    return Probe(int(row[0]), str(row[1]), int(row[2]), round(time.monotonic() - started, 3))


def user_tables(connection: psycopg.Connection) -> list[tuple[str, str]]:
    rows = connection.execute(
        "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind IN ('r', 'p') AND n.nspname <> ALL(%s) AND n.nspname NOT LIKE 'pg_temp%%' "
        "ORDER BY 1, 2",
        (list(SYSTEM_SCHEMAS),),
    ).fetchall()
    return [(str(schema), str(name)) for schema, name in rows]


def count_rows(connection: psycopg.Connection) -> dict[str, int]:
    """Rows per user table (``public`` tables by their name, others as ``schema.table``), read
    in the connection's current transaction (its snapshot)."""
    from psycopg import sql

    counts: dict[str, int] = {}
    for schema, name in user_tables(connection):
        query = sql.SQL("SELECT count(*) FROM {}.{}").format(
            sql.Identifier(schema), sql.Identifier(name)
        )
        row = connection.execute(query).fetchone()
        counts[name if schema == "public" else f"{schema}.{name}"] = int(row[0]) if row else 0
    return counts


def emptiness(server: Server) -> str | None:
    """None when the database holds no relation, type or function of its own, else what it
    holds (a restore goes only into an empty database)."""
    import psycopg

    with connect(server) as connection:
        try:
            row = connection.execute(
                "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname <> ALL(%s) AND n.nspname NOT LIKE 'pg_temp%%' "
                "AND n.nspname NOT LIKE 'pg_toast_temp%%'",
                (list(SYSTEM_SCHEMAS),),
            ).fetchone()
        except psycopg.Error as error:
            raise failure(server, error) from None
    relations = int(row[0]) if row else 0
    return None if relations == 0 else f"it holds {relations} relation(s) (tables, indexes…)"


def create_scratch(server: Server) -> Server:
    """A new empty database on the same server, named ``rules.server.scratch_name``."""
    import psycopg
    from psycopg import sql

    name = rules.scratch_name(server.database, secrets.token_hex(6))
    with connect(server) as connection:
        try:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        except psycopg.Error as error:
            line = failure(server, error)
            raise ServerError(
                f"cannot create the scratch database {name} (the user needs CREATEDB): {line}",
                line.kind,
            ) from None
    return server.other(name)


def drop_scratch(server: Server, scratch: Server) -> None:
    """Drop a scratch database (never the live one: ``rules.server.is_scratch``)."""
    if not rules.is_scratch(scratch.database, server.database):
        raise ValueError(f"{scratch.database} is not a scratch database")
    import psycopg
    from psycopg import sql

    with connect(server) as connection:
        try:
            connection.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(scratch.database)
                )
            )
        except psycopg.Error as error:
            raise failure(server, error) from None


def leftover_scratches(server: Server) -> list[str]:
    """Drop the scratch databases a killed proof or drill left; their names."""
    with connect(server) as connection:
        names = [
            str(row[0])
            for row in connection.execute("SELECT datname FROM pg_database").fetchall()
            if rules.is_scratch(str(row[0]), server.database)
        ]
    for name in names:
        drop_scratch(server, server.other(name))
    return names


@contextlib.contextmanager
def scratch_database(server: Server) -> Iterator[Server]:
    """A scratch database for the block, dropped after whatever happens."""
    scratch = create_scratch(server)
    try:
        yield scratch
    finally:
        with contextlib.suppress(ServerError):
            drop_scratch(server, scratch)
