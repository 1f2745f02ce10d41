"""The terminal as a person meets it: every command answers --help without doing anything
(``python -m bot --help`` included: it must not start a bot), long commands show progress on a
terminal and stay quiet when piped, and ``verify`` says what it checked."""

from __future__ import annotations

import contextlib
import os
import pty
import re
import select
import subprocess
import sys
import time

import pytest

from tests.helpers import REPO, base_env, free_port

COMMANDS = (
    "run",
    "status",
    "backup",
    "list",
    "verify",
    "restore",
    "drill",
    "offsite-release",
    "migrate",
)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_watchdog_command_has_a_real_help(command, tmp_path):
    env = base_env(tmp_path / "data", free_port())
    done = subprocess.run(
        [sys.executable, "-m", "watchdog", command, "--help"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: python -m watchdog {command}")
    assert len(done.stdout.split()) > 25, "a description, not only a usage line"
    assert not (tmp_path / "data").exists(), "--help touched DATA_DIR"


def test_bot_help_explains_and_starts_nothing(tmp_path):
    env = base_env(tmp_path / "data", free_port(), TELEGRAM_BOT_TOKEN="1:never-used")
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "bot", "--help"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: python -m bot")
    assert "TELEGRAM_BOT_TOKEN" in done.stdout and "exit codes" in done.stdout
    assert not (tmp_path / "data").exists(), "the bot started: it made DATA_DIR"
    assert time.monotonic() - started < 20
    wrong = subprocess.run(
        [sys.executable, "-m", "bot", "--no-such-flag"], env=env, cwd=REPO, capture_output=True
    )
    assert wrong.returncode == 2 and not (tmp_path / "data").exists()


def on_a_terminal(cli, *args: str, timeout: float = 60) -> tuple[int, str]:
    """Run a command with stderr on a pseudo-terminal (stdout piped); its code and what the
    terminal showed."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "watchdog", *args],
        env={**cli.env, "TERM": "xterm"},
        cwd=cli.cwd,
        stdout=subprocess.PIPE,
        stderr=slave,
        stdin=subprocess.DEVNULL,
    )
    os.close(slave)
    shown = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: every writer closed the terminal
                break
            if not chunk:
                break
            shown += chunk
        code = proc.wait(max(1.0, deadline - time.monotonic()))
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait(10)
        assert proc.stdout is not None
        proc.stdout.close()
        os.close(master)
    return code, shown.decode(errors="replace")


def test_verify_shows_progress_on_a_terminal_and_none_when_piped(cli):
    assert cli("backup").returncode == 0
    assert cli("backup", "--tier", "daily").returncode == 0
    piped = cli("verify", "--all")
    assert piped.returncode == 0
    assert "\r" not in piped.stderr and "\x1b" not in piped.stderr and piped.stderr == ""
    lines = piped.stdout.splitlines()
    assert len(lines) == 3 and lines[-1] == "2 backups verified"
    for line in lines[:2]:
        assert line.startswith("verified  ") and "sha256 matches, integrity_check ok" in line
    code, shown = on_a_terminal(cli, "verify", "--all")
    assert code == 0
    assert "[1/2] verifying" in shown and "[2/2] verifying" in shown


def test_backup_and_drill_show_progress_only_on_a_terminal(cli):
    code, shown = on_a_terminal(cli, "backup")
    assert code == 0 and "manual backup: copying and proving it…" in shown
    piped = cli("drill")
    assert piped.returncode == 0 and piped.stderr == ""
    code, shown = on_a_terminal(cli, "drill")
    assert code == 0 and "restore drill" in shown


def test_restore_shows_progress_only_on_a_terminal(cli):
    assert cli("backup").returncode == 0
    piped = cli("restore", "latest", "--yes")
    assert piped.returncode == 0 and piped.stderr == ""
    code, shown = on_a_terminal(cli, "restore", "latest", "--yes")
    assert code == 0 and "restoring backup latest: copying and proving it…" in shown


def test_through_the_running_watchdog_progress_shows_its_steps_only_on_a_terminal(cli, stack):
    piped = cli("verify", "--all")
    assert piped.returncode == 0 and piped.stderr == ""
    code, shown = on_a_terminal(cli, "verify", "--all")
    assert code == 0 and re.search(r"\[\d+/\d+\] verifying \S+… \d+ s", shown)  # as polled
    code, shown = on_a_terminal(cli, "backup")
    assert code == 0 and "manual backup: copying and proving it…" in shown
    code, shown = on_a_terminal(cli, "drill")
    assert code == 0 and "restore drill" in shown
    piped = cli("drill")
    assert piped.returncode == 0 and piped.stderr == ""
