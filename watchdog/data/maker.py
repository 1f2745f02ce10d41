"""The snapshot worker: ``python -m watchdog.data.maker PARENT`` makes one verified backup file
(``snapshot.build``: the online copy, the WAL switch, fsync, the split check, sha256, row
counts, compression) at ``nice`` +10, while the watchdog — whose event loop answers HTTP — only
waits for it (a command with no stack running makes it itself: ``make_snapshot(here=True)``). The job arrives as one JSON line on stdin; the answer leaves as
one JSON line on stdout.

The split check runs in threads of this worker (``integrity.Checkers(threads=True)``): one
process, not one more per core. Abandoning (a deadline, a stop) kills the worker's whole process
group and removes its temporaries; a worker also dies with its parent.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import secrets
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from watchdog.data.catalogue import Catalogue, Manifest, new_backup_id
from watchdog.data.integrity import ROOT, worker_env
from watchdog.data.snapshot import SnapshotError, SnapshotRequest, build, packed_path
from watchdog.data.workerproc import die_with_parent, lower_priority

POLL = 0.2
"""How often a waiting caller asks its ``proceed`` (one wake-up of its thread each time)."""
EXIT_WAIT = 30.0
ABANDONED = "abandoned (deadline reached or the watchdog is stopping)"


def make_snapshot(
    source: Path, catalogue: Catalogue, request: SnapshotRequest, *, here: bool = False
) -> tuple[Manifest, Path]:
    """A verified backup file (still temporary) and its manifest, made by a worker process
    (:func:`snapshot.build`) while this thread only waits; ``here``: by this process (a
    command with no stack running, which has no event loop to keep answering: a worker would
    only add its start). Raises SnapshotError, OSError.

    The caller commits it to the catalogue (or discards it). On failure nothing is left behind.
    """
    backup_id = new_backup_id(request.tier, request.created_at, secrets.token_hex(3))
    plain_tmp = catalogue.temporary_path(request.tier, backup_id, ".db")
    try:
        if here:
            return build(source, plain_tmp, backup_id, request)
        return make_in_worker(source, plain_tmp, backup_id, request)
    except BaseException:
        plain_tmp.unlink(missing_ok=True)
        packed_path(plain_tmp, backup_id).unlink(missing_ok=True)
        raise


def make_in_worker(
    source: Path, plain: Path, backup_id: str, request: SnapshotRequest
) -> tuple[Manifest, Path]:
    """What :func:`snapshot.build` makes, made by a worker process. Raises SnapshotError (also
    when ``request.proceed`` says no: the worker is killed), OSError; the caller removes the
    temporaries."""
    started = time.monotonic()
    if not request.proceed():
        raise SnapshotError(ABANDONED)
    source, plain = source.absolute(), plain.absolute()  # the worker runs in another folder
    job = {
        "source": str(source),
        "plain": str(plain),
        "id": backup_id,
        "tier": request.tier,
        "reason": request.reason,
        "created_at": request.created_at,
        "app_version": request.app_version,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "watchdog.data.maker", str(os.getpid())],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=worker_env(),
        cwd=ROOT,
        start_new_session=True,  # its own group: one signal ends it and its check workers
    )
    try:
        out, err = _exchange(process, json.dumps(job).encode() + b"\n", request)
        process.wait(EXIT_WAIT)
    except subprocess.TimeoutExpired:
        raise SnapshotError("the snapshot worker answered but did not exit") from None
    finally:
        _end(process)
    manifest, data = _answer(out, err, process.returncode, backup_id, plain)
    duration = round(time.monotonic() - started, 3)
    return dataclasses.replace(manifest, duration_s=duration), data


def _exchange(
    process: subprocess.Popen[bytes], job: bytes, request: SnapshotRequest
) -> tuple[bytes, bytes]:
    """Send the job, then collect stdout and stderr until both close, asking ``proceed``
    every POLL seconds."""
    assert process.stdin and process.stdout and process.stderr
    with contextlib.suppress(BrokenPipeError):
        process.stdin.write(job)
        process.stdin.close()
    streams = {process.stdout.fileno(): bytearray(), process.stderr.fileno(): bytearray()}
    open_fds = set(streams)
    while open_fds:
        if not request.proceed():
            raise SnapshotError(ABANDONED)
        ready, _, _ = select.select(list(open_fds), [], [], POLL)
        for fd in ready:
            chunk = os.read(fd, 65536)
            if chunk:
                streams[fd] += chunk
            else:
                open_fds.discard(fd)
    return bytes(streams[process.stdout.fileno()]), bytes(streams[process.stderr.fileno()])


def _end(process: subprocess.Popen[bytes]) -> None:
    """The worker and whatever it started, gone (a group id is not reused while a member
    lives, so the group may be signalled after the worker was reaped)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    for stream in (process.stdin, process.stdout, process.stderr):
        with contextlib.suppress(OSError):
            if stream is not None:
                stream.close()


def _answer(
    out: bytes, err: bytes, code: int | None, backup_id: str, plain: Path
) -> tuple[Manifest, Path]:
    """The worker's answer, checked: its manifest for this backup and one of its two files."""
    lines = out.decode("utf-8", "replace").strip().splitlines()
    try:
        answer: dict[str, Any] = json.loads(lines[-1]) if lines else {}
    except ValueError:
        answer = {}
    if not isinstance(answer, dict) or not answer:
        why = "I/O error reading the file (SIGBUS)" if code == -signal.SIGBUS else f"code {code}"
        tail = err.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
        raise SnapshotError(f"the snapshot worker ended without an answer ({why}) {tail[0]}")
    if "error" in answer:
        message = str(answer["error"])
        raise OSError(message) if answer.get("kind") == "os" else SnapshotError(message)
    try:
        manifest = Manifest.from_json(json.dumps(answer["manifest"]))
        data = Path(str(answer["data"]))
    except (KeyError, TypeError, ValueError) as error:
        raise SnapshotError(f"the snapshot worker's answer is malformed: {error}") from None
    expected = {plain, plain.with_name(f"{plain.name}.zst")}
    if manifest.id != backup_id or data not in expected:
        raise SnapshotError("the snapshot worker answered for another backup")
    return manifest, data


def main() -> None:
    die_with_parent(int(sys.argv[1]))
    lower_priority()
    job = json.loads(sys.stdin.readline())
    request = SnapshotRequest(
        str(job["tier"]), str(job["reason"]), float(job["created_at"]), str(job["app_version"])
    )
    answer: dict[str, Any]
    try:
        manifest, data = build(Path(job["source"]), Path(job["plain"]), str(job["id"]), request)
        answer = {"manifest": json.loads(manifest.to_json()), "data": str(data)}
    except SnapshotError as error:
        answer = {"error": str(error), "kind": "snapshot"}
    except OSError as error:
        answer = {"error": f"I/O error: {error.strerror or error}", "kind": "os"}
    sys.stdout.write(json.dumps(answer) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
