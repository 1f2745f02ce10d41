"""``PRAGMA integrity_check`` in worker processes at low priority, split by table for a file
nobody writes: the one place a database's integrity is checked.

What SQLite 3.40 checks (``pragma.c``, ``btree.c``; proven by ``tests/unit/test_integrity.py``):
``PRAGMA integrity_check(T)`` walks the b-trees of T and of its indexes (pages, cells, keys in
order, overflow chains) and compares every row with every index (missing entries, wrong counts,
NOT NULL and CHECK constraints). A partial check skips two things the whole check does: the
free-list (walked only when ``sqlite_schema``, root page 1, is among the trees) and the page
accounting — every page of the file used exactly once, by one tree or the free-list ("Page N:
never used", "2nd reference to page N": a page two tables both claim is seen by neither
table's check). The split check therefore runs, besides every table's ``integrity_check(T)``
(``sqlite_schema`` included), one cheap pass of its own (:func:`_account`): every page of every
tree as ``dbstat`` lists it, and the free-list read from the file, against the file's pages. It
catches what the whole check catches; an ``auto_vacuum`` file (pointer-map pages) gets the
whole check.

A file being written (the live database) gets the whole check in one worker: each worker reads
its own snapshot, and pages counted across two snapshots prove nothing.

Workers are ``python -m watchdog.data.integrity`` processes at ``nice`` +10 (the bot and the
watchdog's HTTP answer first); they take jobs on stdin and answer one JSON line each, and are
killed when a deadline or a stop cuts the check short. A worker is also where an I/O error of a
memory-mapped read (SIGBUS) ends, never in the watchdog.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import sqlite3
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

CHECK_NICE = 10
"""The ``nice`` command's default: background work that yields to everything interactive."""
CACHE_KIB = 16384
"""Page cache per worker: the index look-ups of a big table run 30 % faster than with the
default 2 MB, for 16 MB of memory while a check runs."""
MMAP_BYTES = 0x7FFF0000
"""A file nobody writes is read through a memory map (SQLite's largest here): no copy into
the page cache, a third faster."""
MAX_PROBLEMS = 100
PENDING_BYTE = 0x40000000
"""The page holding this offset is never used by SQLite (the lock byte page)."""
POLL = 0.2
ROOT = Path(__file__).resolve().parents[2]

Proceed = Callable[[], bool]


class Abandoned(Exception):
    """The check was cut short (``proceed`` said no); its workers are gone."""


@dataclass(frozen=True)
class Integrity:
    """What the check found. ``problems`` empty and ``error`` None: the file is sound."""

    problems: list[str] = field(default_factory=list)
    error: str | None = None
    """Why the check could not run to a verdict of SQLite's (an exception, a worker's death)."""
    error_code: int | None = None
    """SQLite's extended error code with ``error``, when there is one."""
    inconclusive: bool = False
    """The check could not run (a worker died, killed from outside): no verdict on the file."""
    seconds: float = 0.0
    jobs: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems and self.error is None

    def summary(self) -> str:
        if self.error is not None:
            return self.error
        shown = "; ".join(self.problems[:3])
        return shown + (" …" if len(self.problems) > 3 else "")


def _always() -> bool:
    return True


def workers_for(cpus: int | None) -> int:
    """As many workers as cores, at least one, at most four (the big table bounds the gain)."""
    return max(1, min(4, cpus or 1))


# -- the worker side ------------------------------------------------------------------------


def _open(path: str, frozen: bool) -> sqlite3.Connection:
    uri = f"file:{path}?mode=ro" + ("&immutable=1" if frozen else "")
    connection = sqlite3.connect(uri, uri=True, timeout=5.0)
    connection.execute("PRAGMA trusted_schema=OFF")
    connection.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
    if frozen:
        connection.execute(f"PRAGMA mmap_size={MMAP_BYTES}")
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
                raise ValueError(f"free-list trunk page {trunk} is out of place")
            seen.add(trunk)
            handle.seek((trunk - 1) * page_size)
            data = handle.read(page_size)
            following, leaves = struct.unpack_from(">II", data, 0)
            if leaves > (page_size - 8) // 4:
                raise ValueError(f"free-list trunk page {trunk} claims {leaves} leaves")
            found.append(trunk)
            found.extend(struct.unpack_from(f">{leaves}I", data, 8))
            trunk = following
    return found


def _account(connection: sqlite3.Connection, path: str) -> list[str]:
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
        problems.append(f"free-list: {error}")
        free = []
    if len(free) != count and not problems:
        problems.append(f"free-list: the header says {count} pages, the list holds {len(free)}")
    for number in free:
        use(number, "free-list")
    pending = PENDING_BYTE // page_size + 1
    for number in range(1, pages + 1):
        if not uses[number] and number != pending:
            problems.append(f"Page {number} is never used")
        if len(problems) >= MAX_PROBLEMS:
            break
    return problems


def _answer(connection: sqlite3.Connection, path: str, line: str) -> dict[str, object]:
    job, _, name = line.partition(" ")
    started = time.monotonic()
    answer: dict[str, object] = {"job": job, "name": name or None, "nice": os.nice(0)}
    try:
        if job == "account":
            answer["problems"] = _account(connection, path)
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
    one JSON answer a line on stdout, until stdin closes."""
    with contextlib.suppress(OSError):
        os.nice(CHECK_NICE - os.nice(0))
    try:
        connection = _open(path, frozen)
    except sqlite3.Error as error:
        code = getattr(error, "sqlite_errorcode", None)
        message = f"{type(error).__name__}: {error}"
        for _line in sys.stdin:
            print(json.dumps({"error": message, "code": code}), flush=True)
        return
    for line in sys.stdin:
        print(json.dumps(_answer(connection, path, line.strip())), flush=True)
    connection.close()


# -- the watchdog's side ----------------------------------------------------------------------


class _Worker:
    def __init__(self, path: Path, frozen: bool) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "watchdog.data.integrity", str(path), "1" if frozen else "0"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            cwd=ROOT,
            text=True,
        )
        self.busy: str | None = None

    def send(self, job: str) -> None:
        assert self.process.stdin is not None
        self.busy = job
        self.process.stdin.write(job + "\n")
        self.process.stdin.flush()

    def death(self) -> tuple[str, bool]:
        """Why the worker is gone, and whether that says something of the file (an I/O error
        reading a mapped page, SIGBUS) or only of the worker."""
        code = self.process.wait()
        if code == -7:
            return "I/O error: reading the file failed (SIGBUS in the check worker)", True
        return (
            f"could not check: the check worker died (exit code {code}) during {self.busy}",
            False,
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            with contextlib.suppress(OSError):
                stream.close()  # type: ignore[union-attr]


def _split_jobs(path: Path) -> list[str] | None:
    """``table T`` for every tree-backed table and ``sqlite_schema``, then ``account``; None
    when the file needs the whole check (``auto_vacuum``). Raises sqlite3.Error."""
    connection = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
    try:
        connection.execute("PRAGMA trusted_schema=OFF")
        if int(connection.execute("PRAGMA auto_vacuum").fetchone()[0]) != 0:
            return None
        names = [
            str(row[0])
            for row in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND rootpage > 0"
            )
        ]
    finally:
        connection.close()
    return ["account", *(f"table {name}" for name in ["sqlite_schema", *names])]


def check_integrity(
    path: Path,
    *,
    frozen: bool,
    quick: bool = False,
    proceed: Proceed = _always,
    workers: int | None = None,
) -> Integrity:
    """The verdict on ``path``. ``frozen``: nobody writes the file (a backup, a candidate), so
    the check is split by table across ``workers`` processes; else one whole check (``quick``:
    ``quick_check``). Raises Abandoned when ``proceed`` says no."""
    started = time.monotonic()
    jobs: list[str] | None = None
    if frozen and not quick:
        try:
            jobs = _split_jobs(path)
        except sqlite3.Error as error:
            return Integrity(
                error=f"{type(error).__name__}: {error}",
                error_code=getattr(error, "sqlite_errorcode", None),
                seconds=time.monotonic() - started,
            )
    if jobs is None:
        jobs = ["quick" if quick else "whole"]
    count = min(len(jobs), workers or workers_for(os.cpu_count()))
    result = _run(path, frozen, jobs, count, proceed)
    return Integrity(
        result.problems,
        result.error,
        result.error_code,
        result.inconclusive,
        time.monotonic() - started,
        len(jobs),
    )


def _run(path: Path, frozen: bool, jobs: list[str], count: int, proceed: Proceed) -> Integrity:
    pool = [_Worker(path, frozen) for _ in range(count)]
    queue = list(jobs)
    problems: list[str] = []
    try:
        for worker in pool:
            worker.send(queue.pop(0))
        while any(worker.busy for worker in pool):
            if not proceed():
                raise Abandoned("the integrity check was abandoned")
            streams = {w.process.stdout: w for w in pool if w.busy and w.process.stdout}
            ready, _, _ = select.select(list(streams), [], [], POLL)
            for stream in ready:
                worker = streams[stream]
                line = stream.readline()  # type: ignore[union-attr]
                if not line:
                    why, bus = worker.death()
                    return Integrity(error=why, inconclusive=not bus)
                answer = json.loads(line)
                if answer.get("error"):
                    return Integrity(error=str(answer["error"]), error_code=answer.get("code"))
                problems += [str(p) for p in answer.get("problems", [])]
                worker.busy = None
                if problems:
                    return Integrity(problems[:MAX_PROBLEMS])
                if queue:
                    worker.send(queue.pop(0))
        return Integrity(problems[:MAX_PROBLEMS])
    finally:
        for worker in pool:
            worker.stop()


if __name__ == "__main__":
    serve(sys.argv[1], sys.argv[2] == "1")
