"""A check worker (``python -m watchdog.data.checker PATH FROZEN PARENT``), started by
``data.integrity``: it lowers its priority, opens the file once, and answers each job on stdin
with one JSON line on stdout: ``plan`` and ``plan quick`` (the split's jobs), ``whole``,
``quick``, ``account`` (the page accounting the partial checks skip), ``table NAME``
(``integrity_check(NAME)``), ``quick NAME`` (``quick_check(NAME)``). The same jobs run in
threads of a split check's worker (``python -m watchdog.data.integrity``) and of the snapshot
worker (:func:`serve` with its own lines).

It imports nothing but what the jobs need (no ``pathlib``, ``dataclasses``, ``subprocess``):
each worker is a process of its own, and the stack's memory counts every one."""

from __future__ import annotations

import json
import sqlite3
import struct
import sys
import time
from collections.abc import Callable, Iterable

from watchdog.data.opening import connect
from watchdog.data.workerproc import (
    CACHE_KIB,
    MAX_PROBLEMS,
    PENDING_BYTE,
    SMALL_CACHE_KIB,
    die_with_parent,
    lower_priority,
    scheduling,
)


def _open(path: str, frozen: bool, cache_kib: int) -> sqlite3.Connection:
    connection = connect(path, "ro", immutable=frozen)
    connection.execute(f"PRAGMA cache_size=-{cache_kib}")
    return connection


def _size_cache(connection: sqlite3.Connection, kib: int) -> None:
    connection.execute(f"PRAGMA cache_size=-{kib}")


def _indexed(connection: sqlite3.Connection, table: str) -> bool:
    return (
        connection.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'index' AND tbl_name = ? LIMIT 1", (table,)
        ).fetchone()
        is not None
    )


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _pragma(connection: sqlite3.Connection, quick: bool, name: str | None) -> list[str]:
    pragma = "quick_check" if quick else "integrity_check"
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


def plan(connection: sqlite3.Connection, quick: bool = False) -> list[str]:
    """``table T`` (``quick``: ``quick T``) for ``sqlite_schema`` and every tree-backed table,
    and ``account``; the whole check alone for an ``auto_vacuum`` file (its pointer-map pages are
    not accounted here)."""
    if int(connection.execute("PRAGMA auto_vacuum").fetchone()[0]) != 0:
        return ["quick" if quick else "whole"]
    names = [
        str(row[0])
        for row in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND rootpage > 0"
        )
    ]
    kind = "quick" if quick else "table"
    return ["account", *(f"{kind} {name}" for name in ["sqlite_schema", *names])]


def _answer(
    connection: sqlite3.Connection, path: str, line: str, cache_kib: int = CACHE_KIB
) -> dict[str, object]:
    job, _, name = line.partition(" ")
    started = time.monotonic()
    answer: dict[str, object] = {"job": job, "name": name or None, **scheduling()}
    try:
        if job == "plan":
            answer["jobs"] = plan(connection, quick=name == "quick")
        elif job == "account":
            _size_cache(connection, SMALL_CACHE_KIB)
            answer["problems"] = account(connection, path)
        elif job == "quick" and name:  # the trees walked in order: no look-ups to cache
            _size_cache(connection, SMALL_CACHE_KIB)
            answer["problems"] = _pragma(connection, True, name)
        elif job == "table" and name:
            _size_cache(connection, cache_kib if _indexed(connection, name) else SMALL_CACHE_KIB)
            answer["problems"] = _pragma(connection, False, name)
        else:
            _size_cache(connection, cache_kib)
            answer["problems"] = _pragma(connection, job == "quick", None)
    except sqlite3.Error as error:
        answer["error"] = f"{type(error).__name__}: {error}"
        answer["code"] = getattr(error, "sqlite_errorcode", None)
    except OSError as error:
        answer["error"] = f"I/O error: {error.strerror or error}"
    answer["seconds"] = round(time.monotonic() - started, 4)
    return answer


def serve(
    path: str,
    frozen: bool,
    lines: Iterable[str],
    say: Callable[[str], None],
    cache_kib: int = CACHE_KIB,
    opened: Callable[[sqlite3.Connection], None] | None = None,
) -> None:
    """One job a line of ``lines`` (``whole``, ``quick``, ``account``, ``table NAME``, …), one
    JSON answer a line to ``say``, until the lines end. The file is opened at the first job: a
    worker may be started before the file it checks is complete. ``opened`` is told the
    connection (a thread's owner interrupts it to stop)."""
    connection: sqlite3.Connection | None = None
    opening: dict[str, object] | None = None
    for line in lines:
        if connection is None and opening is None:
            try:
                connection = _open(path, frozen, cache_kib)
            except sqlite3.Error as error:
                code = getattr(error, "sqlite_errorcode", None)
                opening = {"error": f"{type(error).__name__}: {error}", "code": code}
            else:
                if opened is not None:
                    opened(connection)
        if connection is None:
            say(json.dumps(opening))
            continue
        say(json.dumps(_answer(connection, path, line.strip(), cache_kib)))
    if connection is not None:
        connection.close()


def say_line(line: str) -> None:
    """One answer on stdout, at once: the worker's parent waits for it."""
    print(line, flush=True)


if __name__ == "__main__":
    die_with_parent(int(sys.argv[3]))
    lower_priority()
    serve(sys.argv[1], sys.argv[2] == "1", sys.stdin, say_line)
