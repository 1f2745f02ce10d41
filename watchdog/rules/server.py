"""Decisions about a PostgreSQL server database, as plain functions: is the server fit for the
bot, what a failed connection means in one line, when to try again, what a scratch database is
called, and whether a restored dump holds what was dumped."""

from __future__ import annotations

import re
from dataclasses import dataclass

from watchdog.rules import backoff

MIN_SERVER_VERSION = 140000
"""PostgreSQL 14: the oldest release the bot's schema runs on (its search functions use the
SQL-standard ``RETURN`` body, new in 14; generated tsvector columns, the trusted ``unaccent``
extension, ``DROP DATABASE … WITH (FORCE)``)."""
PROBE_RETRY_FIRST, PROBE_RETRY_MAX = 2.0, 60.0
"""The one backoff (``rules.backoff``) between probes of a server that failed one."""
SCRATCH_PREFIX = "erixcast_verify_"
"""Scratch databases (a dump's proof, a drill) are named ``erixcast_verify_<12 hex>``."""
SCRATCH_NAME = re.compile(rf"{SCRATCH_PREFIX}[0-9a-f]{{12}}")


def database_url_of(settings: object) -> object | None:
    """The one reading of the choice: ``DATABASE_URL`` (a server database) or None (the SQLite
    file). ``data.kinds.database_kind`` builds the kind from it."""
    return getattr(settings, "database_server", None)


@dataclass(frozen=True)
class Verdict:
    ok: bool
    kind: str
    """``ok``, ``auth``, ``no_database``, ``unreachable``, ``too_old``, ``refused``."""
    line: str


def version_text(version_num: int) -> str:
    """``150007`` → ``15.7`` (the form ``server_version_num`` takes from 10 on)."""
    return f"{version_num // 10000}.{version_num % 10000}"


def server_fit(version_num: int) -> Verdict:
    if version_num < MIN_SERVER_VERSION:
        return Verdict(
            False,
            "too_old",
            f"PostgreSQL {version_text(version_num)} is too old: the bot needs "
            f"{version_text(MIN_SERVER_VERSION)} or newer",
        )
    return Verdict(True, "ok", f"PostgreSQL {version_text(version_num)}")


def connect_failure(where: str, sqlstate: str | None, message: str) -> Verdict:
    """What a failed connection means, in one line naming the server (never the password).
    ``message`` is the driver's first line, already scrubbed of secrets."""
    lowered = message.lower()
    if sqlstate in ("28P01", "28000") or "password authentication failed" in lowered:
        return Verdict(
            False, "auth", f"{where}: the server refused the user or password (DATABASE_URL)"
        )
    if sqlstate == "3D000" or ("database" in lowered and "does not exist" in lowered):
        return Verdict(False, "no_database", f"{where}: the database does not exist")
    if sqlstate is not None and sqlstate.startswith("42"):
        return Verdict(False, "refused", f"{where}: not allowed ({message})")
    reason = "timed out" if "timeout" in lowered or "timed out" in lowered else "unreachable"
    detail = f" ({message})" if message else ""
    return Verdict(False, "unreachable", f"{where}: the server is {reason}{detail}")


def probe_delay(failures: int) -> float:
    """Seconds before probing again after ``failures`` failed probes in a row."""
    return backoff.delay(failures, PROBE_RETRY_FIRST, PROBE_RETRY_MAX)


def scratch_name(live: str, salt: str) -> str:
    """The name of a scratch database: ours by its prefix, never the live one."""
    name = f"{SCRATCH_PREFIX}{salt}"
    if not SCRATCH_NAME.fullmatch(name):
        raise ValueError("a scratch database's salt is 12 hex digits")
    if name == live:
        raise ValueError("a scratch database would have the live database's name")
    return name


def is_scratch(name: str, live: str) -> bool:
    """A leftover scratch database of ours (a killed proof or drill), safe to drop."""
    return name != live and SCRATCH_NAME.fullmatch(name) is not None


def count_differences(expected: dict[str, int], restored: dict[str, int]) -> list[str]:
    """Each table whose restored row count is not the dumped one (missing tables included)."""
    problems = []
    for table in sorted(set(expected) | set(restored)):
        want, got = expected.get(table), restored.get(table)
        if want != got:
            problems.append(
                f"{table}: {'absent' if want is None else want} dumped, "
                f"{'absent' if got is None else got} restored"
            )
    return problems


def dump_tool_fits(tool_major: int, server_version_num: int) -> str | None:
    """None when ``pg_dump`` of ``tool_major`` can dump the server (pg_dump refuses a newer
    server), else why not."""
    server_major = server_version_num // 10000
    if tool_major < server_major:
        return (
            f"pg_dump {tool_major} cannot dump a PostgreSQL {server_major} server: install "
            f"postgresql-client-{server_major} (or newer)"
        )
    return None
