"""``DATABASE_URL``: the PostgreSQL server that holds the bot's data instead of the SQLite file.

Read and checked here and nowhere else (``conf.settings`` calls :func:`parse_database_url`),
turned here into SQLAlchemy's ``postgresql+psycopg://`` form. The password never comes out of
``str``/``repr``/error texts: :attr:`DatabaseURL.redacted` is what logs and pages show, and
:attr:`DatabaseURL.secrets` is what the log formatter must hide should a driver quote it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

SCHEMES = ("postgresql", "postgres")
SQLALCHEMY_SCHEME = "postgresql+psycopg"
_EXAMPLE = "postgresql://user:password@host:5432/erixcast"


@dataclass(frozen=True)
class DatabaseURL:
    """A checked ``postgresql://`` URL."""

    _raw: str = field(repr=False)

    @property
    def sqlalchemy_url(self) -> str:
        """The URL for ``sqlalchemy.create_engine`` (psycopg 3). Holds the password."""
        return f"{SQLALCHEMY_SCHEME}://{self._raw.split('://', 1)[1]}"

    @property
    def libpq_url(self) -> str:
        """The URL as libpq (``psql``, ``pg_dump``, ``psycopg.connect``) takes it. Holds the
        password."""
        return self._raw

    @property
    def redacted(self) -> str:
        """``postgresql://user@host:port/database``: no password, no password= parameter."""
        parts = urlsplit(self._raw)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        netloc = host + (f":{parts.port}" if parts.port is not None else "")
        if parts.username:
            netloc = f"{parts.username}@{netloc}"
        query = urlencode(
            [(k, v) for k, v in parse_qsl(parts.query) if k.lower() != "password"], safe="/"
        )
        return f"postgresql://{netloc}{parts.path}" + (f"?{query}" if query else "")

    @property
    def secrets(self) -> list[str]:
        """The password as written in the URL and decoded, for redaction."""
        parts = urlsplit(self._raw)
        found = [parts.password or ""]
        found += [v for k, v in parse_qsl(parts.query) if k.lower() == "password"]
        with_decoded = found + [unquote(value) for value in found]
        return sorted({value for value in with_decoded if value}, key=len, reverse=True)

    def __str__(self) -> str:
        return self.redacted

    def __repr__(self) -> str:
        return f"DatabaseURL({self.redacted!r})"


def parse_database_url(value: str) -> DatabaseURL:
    """The URL checked, or ValueError whose text never holds the URL (it may hold a password)."""
    value = value.strip()
    scheme = value.split("://", 1)[0].lower() if "://" in value else ""
    if scheme not in SCHEMES:
        raise ValueError(
            "must be a PostgreSQL URL starting with postgresql:// (or postgres://), "
            f"like {_EXAMPLE}; leave it unset for the SQLite file at DATABASE_PATH"
        )
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError:
        raise ValueError(f"the host or port cannot be read; the form is {_EXAMPLE}") from None
    if not parts.hostname and "host=" not in parts.query:
        raise ValueError(f"names no server (host); the form is {_EXAMPLE}")
    if any(char.isspace() for char in value):
        raise ValueError("holds spaces; percent-encode them (%20)")
    return DatabaseURL("postgresql://" + value.split("://", 1)[1])
