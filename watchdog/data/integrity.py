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
(``sqlite_schema`` included), one cheap pass of its own (``data.checker.account``): every page of every
tree as ``dbstat`` lists it, and the free-list read from the file, against the file's pages. It
catches what the whole check catches; an ``auto_vacuum`` file (pointer-map pages) gets the
whole check.

The quick check splits the same way (``quick_check(T)`` per table, plus the same accounting:
a partial ``quick_check`` skips exactly what a partial ``integrity_check`` skips), for the start-up
check before the bot's launch, when nobody writes the file.

A file being written (the live database) gets the whole check in one worker: each worker reads
its own snapshot, and pages counted across two snapshots prove nothing.

A check runs in one worker process at low priority (the bot and the watchdog's HTTP answer
first), which takes jobs on stdin, answers one JSON line each, and is killed when a deadline or
a stop cuts the check short: ``python -m watchdog.data.checker`` for one share, ``python -m
watchdog.data.integrity`` for a split check, whose shares are threads of that one process
(``serve_split``; SQLite lets go of the GIL while it walks a tree): one interpreter per check,
not one per core — each is ~20 MB, and the stack's memory counts every one. A worker is also
where an I/O error of a memory-mapped read (SIGBUS) ends, never in the watchdog. A process that
is itself a worker (the snapshot worker, ``data.maker``) runs the shares in threads of its own
(``threads=True``).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import select
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from watchdog.data import checker
from watchdog.data.workerproc import CACHE_KIB as CACHE_KIB
from watchdog.data.workerproc import CHECK_NICE as CHECK_NICE
from watchdog.data.workerproc import MAX_PROBLEMS, lower_priority, scheduling
from watchdog.data.workerproc import PENDING_BYTE as PENDING_BYTE
from watchdog.data.workerproc import die_with_parent as die_with_parent

POLL = 0.2
THREAD_STOP_WAIT = 10.0
ROOT = Path(__file__).resolve().parents[2]

Proceed = Callable[[], bool]
Say = Callable[[str], None]


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


# -- the watchdog's side ----------------------------------------------------------------------


def worker_env() -> dict[str, str]:
    """The environment of a ``python -m watchdog.data.…`` worker: ours, finding this tree."""
    env = dict(os.environ)
    # Each thread of a worker (the check's, the hash's, the counts') would get a malloc arena of
    # its own, kept after the thread is done with it: two arenas in all cut the worker's peak
    # by ~4 MB (measured: the stack's peak during terminal backups, 224 → 219 MB).
    env.setdefault("MALLOC_ARENA_MAX", "2")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


class _Worker:
    """A checker process (``data.checker``); with ``shares`` > 1 one of this module's, which
    answers a ``plan`` with the whole split check, run in that many threads of its own."""

    def __init__(self, path: Path, frozen: bool, shares: int = 1) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "watchdog.data.integrity" if shares > 1 else "watchdog.data.checker",
                str(path),
                "1" if frozen else "0",
                str(os.getpid()),
                str(shares),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=worker_env(),
            cwd=ROOT,
            text=True,
        )
        self.busy: str | None = None

    @property
    def stream(self) -> IO[str]:
        assert self.process.stdout is not None
        return self.process.stdout

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


class _Thread:
    """The jobs of a worker run by a thread of this process (itself a worker: ``data.maker``),
    answering through a pipe like a worker process, so :func:`_run` drives both alike. Stopping
    interrupts SQLite (``Connection.interrupt`` is safe from another thread)."""

    def __init__(self, path: Path, frozen: bool) -> None:
        self.jobs: queue.Queue[str | None] = queue.Queue()
        self.connection: sqlite3.Connection | None = None
        self.stopped = threading.Event()
        read, self.write = os.pipe()
        self.stream = os.fdopen(read, "r")
        self.busy: str | None = None
        self.thread = threading.Thread(
            target=self._serve, args=(str(path), frozen), name="check", daemon=True
        )
        self.thread.start()

    def _serve(self, path: str, frozen: bool) -> None:
        def say(line: str) -> None:
            os.write(self.write, (line + "\n").encode())

        def opened(connection: sqlite3.Connection) -> None:
            self.connection = connection
            if self.stopped.is_set():
                connection.interrupt()

        try:
            checker.serve(path, frozen, iter(self.jobs.get, None), say, opened=opened)
        finally:
            os.close(self.write)

    def send(self, job: str) -> None:
        self.busy = job
        self.jobs.put(job)

    def death(self) -> tuple[str, bool]:
        return f"could not check: the check thread ended during {self.busy}", False

    def stop(self) -> None:
        self.stopped.set()
        self.jobs.put(None)
        if self.connection is not None:
            self.connection.interrupt()
        self.thread.join(THREAD_STOP_WAIT)
        with contextlib.suppress(OSError):
            self.stream.close()


class Checkers:
    """The check's ``count`` shares for one file, started before their jobs: the worker's
    start-up (an interpreter, imports) then overlaps what comes first, e.g. the copy of a
    backup, which need not exist yet (a share opens the file at its first job). Used by one
    check; stopped by it. The shares are threads of one worker process, or (``threads``) of
    this process, for a process that is itself a worker."""

    def __init__(self, path: Path, frozen: bool, count: int, threads: bool = False) -> None:
        self.path, self.frozen = path, frozen
        self.pool: list[_Worker | _Thread] = (
            [_Thread(path, frozen) for _ in range(count)]
            if threads
            else [_Worker(path, frozen, count)]
        )

    def stop(self) -> None:
        for worker in self.pool:
            worker.stop()


def check_integrity(
    path: Path,
    *,
    frozen: bool,
    quick: bool = False,
    proceed: Proceed = _always,
    workers: int | None = None,
    checkers: Checkers | None = None,
) -> Integrity:
    """The verdict on ``path``. ``frozen``: nobody writes the file (a backup, a candidate, the
    live file before the bot's launch), so the check is split by table across ``workers``
    processes (or the ``checkers`` started for it); else one whole check. ``quick``:
    ``quick_check`` instead of ``integrity_check``. Raises Abandoned when ``proceed`` says no."""
    started = time.monotonic()
    split = frozen
    jobs = ["plan quick" if quick else "plan"] if split else ["quick" if quick else "whole"]
    if checkers is None:
        count = (workers or workers_for(os.cpu_count())) if split else 1
        checkers = Checkers(path, frozen, count)
    elif (checkers.path, checkers.frozen) != (path, frozen):
        checkers.stop()
        raise ValueError("these check workers were started for another file")
    result = _run(checkers.pool, jobs, proceed)
    return Integrity(
        result.problems,
        result.error,
        result.error_code,
        result.inconclusive,
        time.monotonic() - started,
        result.jobs,
    )


def _run(pool: list[_Worker | _Thread], jobs: list[str], proceed: Proceed = _always) -> Integrity:
    """The jobs across the workers of ``pool``, stopped at the end; a ``plan`` answer (the
    split's jobs) joins the queue."""
    queue = list(jobs)
    problems: list[str] = []
    done = 0
    try:
        for worker in pool:
            if queue:
                worker.send(queue.pop(0))
        while any(worker.busy for worker in pool):
            if not proceed():
                raise Abandoned("the integrity check was abandoned")
            streams = {w.stream: w for w in pool if w.busy}
            ready, _, _ = select.select(list(streams), [], [], POLL)
            for stream in ready:
                worker = streams[stream]
                line = stream.readline()
                if not line:
                    why, bus = worker.death()
                    return Integrity(error=why, inconclusive=not bus)
                answer = json.loads(line)
                if answer.get("error"):
                    return Integrity(
                        error=str(answer["error"]),
                        error_code=answer.get("code"),
                        inconclusive=bool(answer.get("inconclusive")),
                    )
                problems += [str(p) for p in answer.get("problems", [])]
                queue += [str(job) for job in answer.get("jobs", [])]
                worker.busy, done = None, done + int(answer.get("done", 1))
                if problems:
                    return Integrity(problems[:MAX_PROBLEMS], jobs=done)
            for idle in pool:
                if queue and not idle.busy:
                    idle.send(queue.pop(0))
        return Integrity(problems[:MAX_PROBLEMS], jobs=done)
    finally:
        for worker in pool:
            worker.stop()


def serve_split(path: str, frozen: bool, shares: int, lines: Iterable[str], say: Say) -> None:
    """A checker process's split check: each ``plan`` line (``plan quick``) answered by the
    whole split, run in ``shares`` threads of this process, as one answer (its problems, or
    the error that ended it, and ``done``: how many jobs ran)."""
    for line in lines:
        job = line.strip()
        result = _run(Checkers(Path(path), frozen, shares, threads=True).pool, [job])
        answer: dict[str, object] = {
            "job": job,
            "problems": result.problems,
            "done": result.jobs,
            **scheduling(),
        }
        if result.error is not None:
            answer.update(
                error=result.error, code=result.error_code, inconclusive=result.inconclusive
            )
        say(json.dumps(answer))


if __name__ == "__main__":
    die_with_parent(int(sys.argv[3]))
    lower_priority()  # before any thread: the shares' threads inherit it
    serve_split(sys.argv[1], sys.argv[2] == "1", int(sys.argv[4]), sys.stdin, checker.say_line)
