"""``bin/start`` (Render's start command, and what ``make run`` ends in) brings the stack up for
a non-root user whose stdout and stderr are pipes owned by root — where supervisord alone cannot
reopen ``/dev/stdout`` by path (EACCES), spawns nothing and idles.

A real supervisord, watchdog and bot, as ``nobody``, against the fake Bot API. The test process
is root, so the pipes ``subprocess.PIPE`` makes are root's, as on a platform that runs the
service as a user of its own.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import psutil
import pytest

from tests.helpers import REPO, VENV_BIN, base_env, free_port, get_json, wait_until

pytestmark = pytest.mark.integration
NOBODY = "nobody"


def _reachable_by_nobody(path: str) -> bool:
    done = subprocess.run(["runuser", "-u", NOBODY, "--", "test", "-x", path], timeout=10)
    return done.returncode == 0


@pytest.fixture(scope="module")
def as_nobody() -> tuple[list[str], bool]:
    """The command prefix that runs a command as ``nobody``, and whether supervisord needs a
    ``python`` it can ``access()``.

    Where the interpreter lives under a folder ``nobody`` cannot enter (here /root/.pyenv, mode
    0700), ``nobody`` gets one capability, CAP_DAC_READ_SEARCH: it may read and traverse, never
    write what is not its own — opening root's pipe for writing still fails as it would for any
    other user. supervisord checks its command with ``access()``, which ignores capabilities, so
    the test then puts a ``python`` of its own (``exec`` of the real one) first on PATH."""
    if os.geteuid() != 0:
        pytest.skip("needs root, to make pipes owned by root and run the stack as another user")
    for tool in ("runuser", "setpriv"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    if _reachable_by_nobody(str(VENV_BIN / "python")) and _reachable_by_nobody(
        os.path.realpath(sys.executable)
    ):
        return ["runuser", "-u", NOBODY, "--"], False
    uid, gid = _ids(NOBODY)
    prefix = [
        "setpriv",
        f"--reuid={uid}",
        f"--regid={gid}",
        "--clear-groups",
        "--inh-caps=+dac_read_search",
        "--ambient-caps=+dac_read_search",
        "--",
    ]
    return prefix, True


def _ids(user: str) -> tuple[int, int]:
    import pwd

    entry = pwd.getpwnam(user)
    return entry.pw_uid, entry.pw_gid


class Piped:
    """A process whose stdout and stderr are pipes of this (root) process, read by threads."""

    def __init__(self, argv: Sequence[str], env: dict[str, str], cwd: Path) -> None:
        self.popen = subprocess.Popen(
            list(argv),
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self._readers = [
            threading.Thread(target=self._read, args=(self.popen.stdout, self.out), daemon=True),
            threading.Thread(target=self._read, args=(self.popen.stderr, self.err), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream, into: list[str]) -> None:  # type: ignore[no-untyped-def]
        for line in iter(stream.readline, b""):
            into.append(line.decode(errors="replace"))

    def stdout(self) -> str:
        return "".join(self.out)

    def stderr(self) -> str:
        return "".join(self.err)

    def family(self) -> list[psutil.Process]:
        with contextlib.suppress(psutil.NoSuchProcess):
            return [psutil.Process(self.popen.pid), *psutil.Process(self.popen.pid).children(True)]
        return []

    def finish(self, timeout: float = 10) -> None:
        """Wait for both pipes to close (every writer gone) and the process to end."""
        for reader in self._readers:
            reader.join(timeout)
        self.popen.wait(timeout)

    def kill(self) -> None:
        family = self.family()
        for process in reversed(family):
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        psutil.wait_procs(family, timeout=10)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(10)
        for reader in self._readers:
            reader.join(5)
        for stream in (self.popen.stdout, self.popen.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def nobody_home(as_nobody) -> Iterator[Path]:
    """A folder ``nobody`` can reach (pytest's tmp_path is under root's 0700 /tmp/pytest-of-root),
    with a DATA_DIR ``nobody`` owns and, if needed, the ``python`` for supervisord's check."""
    _prefix, needs_wrapper = as_nobody
    home = Path(tempfile.mkdtemp(prefix="erixcast-nobody-", dir="/tmp"))
    home.chmod(0o755)
    uid, gid = _ids(NOBODY)
    for own in ("data", "tmp"):
        (home / own).mkdir()
        os.chown(home / own, uid, gid)
    if needs_wrapper:
        wrappers = home / "bin"
        wrappers.mkdir()
        python = wrappers / "python"
        python.write_text(f'#!/bin/sh\nexec {VENV_BIN / "python"} "$@"\n')
        python.chmod(0o755)
    try:
        yield home
    finally:
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def started() -> Iterator[list[Piped]]:
    processes: list[Piped] = []
    try:
        yield processes
    finally:
        for process in reversed(processes):
            process.kill()


def nobody_env(home: Path, port: int, **extra: str) -> dict[str, str]:
    env = base_env(home / "data", port, HOME=str(home), **extra)
    if (home / "bin" / "python").exists():
        env["PATH"] = f"{home / 'bin'}{os.pathsep}{env['PATH']}"
    env["TMPDIR"] = str(home / "tmp")  # nobody's, and where the script's relays live
    return env


def test_the_precondition_nobody_cannot_reopen_a_root_pipe_by_path(as_nobody):
    prefix, _ = as_nobody
    done = subprocess.run(
        [*prefix, "sh", "-c", "(: >>/dev/stdout) 2>/dev/null || echo refused >&2"],
        capture_output=True,
        timeout=20,
    )
    assert done.stderr.strip() == b"refused"


def test_the_start_script_brings_the_stack_up_as_a_user_without_access_to_its_pipes(
    as_nobody, nobody_home, started, fake_api
):
    prefix, _ = as_nobody
    port = free_port()
    env = nobody_env(
        nobody_home, port, TELEGRAM_BOT_TOKEN=fake_api.token, TELEGRAM_API_URL=fake_api.base_url
    )
    stack = Piped([*prefix, "sh", str(REPO / "bin" / "start")], env, nobody_home)
    started.append(stack)

    def health() -> dict:
        return get_json(f"http://127.0.0.1:{port}/health")[1]

    try:
        wait_until(lambda: health()["bot"]["status"] == "running", timeout=60, what="bot running")
    except AssertionError as error:
        raise AssertionError(
            f"{error}\nstdout:\n{stack.stdout()}\nstderr:\n{stack.stderr()}"
        ) from None
    fake_api.send_text(1001, "/start", first_name="Ann")
    assert "Ann" in fake_api.wait_for_sent(1001, timeout=20)["text"]

    warnings = [line for line in stack.err if "bin/start: warning" in line]
    assert len(warnings) == 1, stack.stderr()
    supervisord = next(p for p in stack.family() if "supervisord" in " ".join(p.cmdline()))
    tree = [supervisord, *supervisord.children(recursive=True)]
    commands = " ".join(" ".join(p.cmdline()) for p in tree)
    assert "watchdog run" in commands and "-m bot" in commands
    assert {p.uids().real for p in tree} == {_ids(NOBODY)[0]}, "everything runs as nobody"
    # The programs' output still reaches the platform's stdout, through the script's relay.
    wait_until(lambda: "bot launched" in stack.stdout(), timeout=10, what="watchdog output")

    supervisord.send_signal(signal.SIGTERM)  # signals reach supervisord itself (exec)
    assert psutil.wait_procs(tree, timeout=30)[1] == [], "all stopped on SIGTERM"
    stack.finish(timeout=15)
    assert stack.popen.returncode == 0
    assert "bot stopped with exit code 0" in stack.stdout()
    assert not list((nobody_home / "tmp").glob("erixcast-start.*")), "the relays' FIFOs are gone"


def test_without_the_script_supervisord_spawns_nothing_for_such_a_user(
    as_nobody, nobody_home, started
):
    """The failure bin/start exists for, seen once: supervisord alone, same user, same pipes."""
    prefix, _ = as_nobody
    port = free_port()
    supervisord = [str(VENV_BIN / "supervisord"), "-c", str(REPO / "supervisord.conf")]
    stack = Piped([*prefix, *supervisord], nobody_env(nobody_home, port), nobody_home)
    started.append(stack)
    output = wait_until(
        lambda: "spawnerr" in (text := stack.stdout() + stack.stderr()) and text,
        timeout=30,
        what="supervisord's spawn error",
    )
    assert "EACCES" in output or "ermission denied" in output, output
    names = " ".join(" ".join(p.cmdline()) for p in stack.family())
    assert "watchdog run" not in names
