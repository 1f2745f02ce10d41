"""A check worker (``python -m watchdog.data.checker PATH FROZEN PARENT``), started by
``data.integrity``: it lowers its priority, opens the file once, and answers each job on stdin
with one JSON line on stdout: ``plan`` (the split's jobs), ``whole``, ``quick``, ``account``
(the page accounting the partial checks skip), ``table NAME``."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import struct
import sys
import time
from pathlib import Path

from watchdog.data.database import connect
from watchdog.data.integrity import (
    CACHE_KIB,
    CHECK_NICE,
    MAX_PROBLEMS,
    PENDING_BYTE,
    die_with_parent,
)


def _open(path: str, frozen: bool) -> sqlite3.Connection:
    connection = connect(Path(path), "ro", immutable=frozen)
    connection.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
    return connection


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _pragma(connection: sqlite3.Connection, job: str, name: str | None) -> list[str]:
    pragma = "quick_check" if job == "quick" else "integrity_check"
    argument = f"({_quoted(name)})" if name is not None else f"({MAX_PROBLEMS})"
    rows = [str(row[0]) for row in connection.execute(f"PRAGMA {pragma}{argument}")]
    return [] if rows == ["ok"] else rows


def _freelist(path: str, page_size: int, pages: int, first: int, count: int) -> list[int]:
    """The free-list's trunk and leaf pages as the file holds them; ValueError when it is
    not a list (a page out of the file, a loop, more pages than the header says)."""
    found: list[int] = []
    seen: set[int] = set()
    with open(path, "rb") as handle:
        trunk = first
        while trunk:
            if not 1 <= trunk <= pages or trunk in seen or len(found) > count:
                raise ValueError(f"freelist trunk page {trunk} is out of place")
            seen.add(trunk)
            handle.seek((trunk - 1) * page_size)
            data = handle.read(page_size)
            following, leaves = struct.unpack_from(">II", data, 0)
            if leaves > (page_size - 8) // 4:
                raise ValueError(f"freelist trunk page {trunk} claims {leaves} leaves")
            found.append(trunk)
            found.extend(struct.unpack_from(f">{leaves}I", data, 8))
            trunk = following
    return found


def account(connection: sqlite3.Connection, path: str) -> list[str]:
    """Every page of the file used exactly once: by a tree (``dbstat``) or the free-list."""
    page_size = int(connection.execute("PRAGMA page_size").fetchone()[0])
    pages = int(connection.execute("PRAGMA page_count").fetchone()[0])
    uses = bytearray(pages + 1)
    problems: list[str] = []

    def use(number: int, what: str) -> None:
        if not 1 <= number <= pages:
            problems.append(f"{what}: page {number} is not in the file of {pages} pages")
        elif uses[number]:
            problems.append(f"2nd reference to page {number} ({what})")
        else:
            uses[number] = 1

    for name, number in connection.execute("SELECT name, pageno FROM dbstat"):
        use(int(number), f"tree {name}")
    with open(path, "rb") as handle:
        header = handle.read(100)
    first, count = struct.unpack_from(">II", header, 32)
    try:
        free = _freelist(path, page_size, pages, first, count)
    except (ValueError, struct.error) as error:
        problems.append(f"freelist: {error}")
        free = []
    if len(free) != count and not problems:
        problems.append(f"freelist: the header says {count} pages, the list holds {len(free)}")
    for number in free:
        use(number, "freelist")
    pending = PENDING_BYTE // page_size + 1
    for number in range(1, pages + 1):
        if not uses[number] and number != pending:
            problems.append(f"Page {number} is never used")
        if len(problems) >= MAX_PROBLEMS:
            break
    return problems


def plan(connection: sqlite3.Connection) -> list[str]:
    """``table T`` for ``sqlite_schema`` and every tree-backed table, and ``account``; the whole
    check alone for an ``auto_vacuum`` file (its pointer-map pages are not accounted here)."""
    if int(connection.execute("PRAGMA auto_vacuum").fetchone()[0]) != 0:
        return ["whole"]
    names = [
        str(row[0])
        for row in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND rootpage > 0"
        )
    ]
    return ["account", *(f"table {name}" for name in ["sqlite_schema", *names])]


def _answer(connection: sqlite3.Connection, path: str, line: str) -> dict[str, object]:
    job, _, name = line.partition(" ")
    started = time.monotonic()
    answer: dict[str, object] = {"job": job, "name": name or None, "nice": os.nice(0)}
    try:
        if job == "plan":
            answer["jobs"] = plan(connection)
        elif job == "account":
            answer["problems"] = account(connection, path)
        elif job == "table":
            answer["problems"] = _pragma(connection, job, name)
        else:
            answer["problems"] = _pragma(connection, job, None)
    except sqlite3.Error as error:
        answer["error"] = f"{type(error).__name__}: {error}"
        answer["code"] = getattr(error, "sqlite_errorcode", None)
    except OSError as error:
        answer["error"] = f"I/O error: {error.strerror or error}"
    answer["seconds"] = round(time.monotonic() - started, 4)
    return answer


def serve(path: str, frozen: bool) -> None:
    """A worker: one job a line on stdin (``whole``, ``quick``, ``account``, ``table NAME``),
    one JSON answer a line on stdout, until stdin closes. The file is opened at the first job:
    a worker may be started before the file it checks is complete."""
    with contextlib.suppress(OSError):
        os.nice(CHECK_NICE - os.nice(0))
    connection: sqlite3.Connection | None = None
    opening: dict[str, object] | None = None
    for line in sys.stdin:
        if connection is None and opening is None:
            try:
                connection = _open(path, frozen)
            except sqlite3.Error as error:
                code = getattr(error, "sqlite_errorcode", None)
                opening = {"error": f"{type(error).__name__}: {error}", "code": code}
        if connection is None:
            print(json.dumps(opening), flush=True)
            continue
        print(json.dumps(_answer(connection, path, line.strip())), flush=True)
    if connection is not None:
        connection.close()


if __name__ == "__main__":
    die_with_parent(int(sys.argv[3]))
    serve(sys.argv[1], sys.argv[2] == "1")
