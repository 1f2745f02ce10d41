"""Safe by default, through the real entry points: a newcomer's `.env`, bad environment in every
form, a dead supervisor, an orphaned watchdog, owner-only files, files of the wrong shape."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil
import pytest
from pyrage import x25519

from conf.exitcodes import EXIT_BAD_SETTINGS, EXIT_REFUSED
from tests.helpers import REPO, VENV_BIN, base_env, free_port, get_json, tmpfs, wait_until

pytestmark = pytest.mark.integration
WATCHDOG = [sys.executable, "-m", "watchdog", "run"]
BOT = [sys.executable, "-m", "bot"]
SUPERVISORD = [str(VENV_BIN / "supervisord"), "-c", str(REPO / "supervisord.conf")]
AGE_KEY = str(x25519.Identity.generate())


def health(port: int) -> dict:
    return get_json(f"http://127.0.0.1:{port}/health")[1]


def one_line_refusal(proc, code: int, naming: str) -> str:
    assert proc.wait(60) == code, proc.output()
    output = proc.output()
    assert "Traceback" not in output, output
    assert len(output.strip().splitlines()) == 1, output
    assert naming in output
    return output


# -- a newcomer's .env --------------------------------------------------------------------------


def fresh_checkout(target: Path) -> Path:
    """The tracked files as they are in this working tree (what a clone gives), and the
    already-installed virtualenv beside them so nothing is downloaded."""
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True
    ).stdout.split(b"\0")
    for name in filter(None, listed):
        source = REPO / name.decode()
        if source.is_file():
            (target / name.decode()).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name.decode())
    (target / ".venv").symlink_to(REPO / ".venv")
    return target


def test_a_fresh_checkout_with_env_example_copied_runs_healthy_with_make_run(
    processes, tmp_path, fake_api
):
    """The README's first steps to the letter: `cp .env.example .env`, `make run`. Only the token
    and the Bot API (the fake) come from the environment, which wins over `.env`."""
    checkout = fresh_checkout(tmp_path / "checkout")
    shutil.copy(checkout / ".env.example", checkout / ".env")
    port = free_port()
    env = {
        key: value
        for key, value in base_env(checkout / "data", port).items()
        if key not in ("DATA_DIR", "ENV_FILE", "PORT", "HOST")
    }
    env.update(
        TELEGRAM_BOT_TOKEN=fake_api.token, TELEGRAM_API_URL=fake_api.base_url, PORT=str(port)
    )
    env.pop("PYTHONPATH", None)
    processes.start("make-run", ["make", "run"], env, cwd=checkout)
    doc = wait_until(
        lambda: (
            (d := health(port))["status"] == "healthy"
            and d["bot"]["status"] == "running"
            and d["database"]["integrity"] == "ok"
            and d
        ),
        timeout=120,
        what="a healthy stack",
    )
    assert doc["database"]["integrity"] == "ok"
    assert (checkout / "data" / "erixcast.db").is_file()
    assert (checkout / ".env").is_file() and (checkout / "Makefile").is_file()
    quarantine = checkout / "data" / "quarantine"
    assert not quarantine.exists() or not any(quarantine.iterdir())
    fake_api.send_text(12, "/start", first_name="Newcomer")
    assert "Newcomer" in fake_api.wait_for_sent(12, timeout=20)["text"]


# -- bad environment in every form ----------------------------------------------------------------


def _cases(tmp_path: Path) -> dict[str, tuple[dict[str, str], int, str]]:
    folder = tmp_path / "a-folder"
    folder.mkdir()
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    latin1 = tmp_path / "latin1.env"
    latin1.write_bytes("ADMIN_IDS=1\nNOTE=caf\xe9\n".encode("latin-1"))
    offsite = {"BACKUP_GIT_URL": "https://git.example.org/backups.git", "BACKUP_AGE_KEY": AGE_KEY}
    (tmp_path / "loop1").symlink_to(tmp_path / "loop2")
    (tmp_path / "loop2").symlink_to(tmp_path / "loop1")
    return {
        "data dir through a loop of links": (
            {"DATA_DIR": str(tmp_path / "loop1" / "data")},
            2,
            "DATA_DIR",
        ),
        "data dir in an unknown user's home": ({"DATA_DIR": "~nosuchuser/data"}, 2, "DATA_DIR"),
        "a file on the database's path": (
            {"DATABASE_PATH": str(a_file / "erixcast.db")},
            2,
            "DATABASE_PATH",
        ),
        "database where the logs go": (
            {"DATABASE_PATH": str(tmp_path / "data" / "logs")},
            2,
            "DATABASE_PATH",
        ),
        "database where the state is": (
            {"DATABASE_PATH": str(tmp_path / "data" / "watchdog-state.json")},
            2,
            "DATABASE_PATH",
        ),
        "database path is a folder": ({"DATABASE_PATH": str(folder)}, 2, "DATABASE_PATH"),
        "database folder missing": (
            {"DATABASE_PATH": str(tmp_path / "nowhere" / "x.db")},
            2,
            "DATABASE_PATH",
        ),
        "data dir is a file": ({"DATA_DIR": str(a_file)}, 2, "DATA_DIR"),
        "env file named but missing": ({"ENV_FILE": str(tmp_path / "none.env")}, 2, "ENV_FILE"),
        "env file not utf-8": ({"ENV_FILE": str(latin1)}, 2, "ENV_FILE"),
        "api url in clear to another host": (
            {"TELEGRAM_API_URL": "http://api.example.org/bot"},
            2,
            "TELEGRAM_API_URL",
        ),
        "age key malformed": (
            {**offsite, "BACKUP_AGE_KEY": "AGE-SECRET-KEY-1nope"},
            2,
            "BACKUP_AGE_KEY",
        ),
        "branch escapes": ({**offsite, "BACKUP_GIT_BRANCH": "../x"}, 2, "BACKUP_GIT_BRANCH"),
        "credentials in the url": (
            {**offsite, "BACKUP_GIT_URL": "https://me:pw-s3cr3t@git.example.org/b.git"},
            2,
            "BACKUP_GIT_URL",
        ),
        "token over plain http": (
            {
                **offsite,
                "BACKUP_GIT_URL": "http://git.example.org/b.git",
                "BACKUP_GIT_TOKEN": "ghp_plainHttpToken0123456789",
            },
            2,
            "BACKUP_GIT_URL",
        ),
    }


CASE_NAMES = [
    "data dir through a loop of links",
    "data dir in an unknown user's home",
    "a file on the database's path",
    "database where the logs go",
    "database where the state is",
    "database path is a folder",
    "database folder missing",
    "data dir is a file",
    "env file named but missing",
    "env file not utf-8",
    "api url in clear to another host",
    "age key malformed",
    "branch escapes",
    "credentials in the url",
    "token over plain http",
]


@pytest.mark.parametrize("case", CASE_NAMES)
def test_bad_environment_is_one_line_naming_it(processes, tmp_path, case):
    changes, code, naming = _cases(tmp_path)[case]
    env = base_env(tmp_path / "data", free_port(), **changes)
    output = one_line_refusal(processes.start("bad", WATCHDOG, env), code, naming)
    assert "pw-s3cr3t" not in output and "ghp_plainHttpToken" not in output
    assert AGE_KEY not in output


@pytest.mark.parametrize("case", ["env file named but missing", "env file not utf-8"])
def test_the_bot_refuses_the_same_way(processes, tmp_path, case):
    changes, code, naming = _cases(tmp_path)[case]
    env = base_env(tmp_path / "data", free_port(), **changes)
    one_line_refusal(processes.start("bad-bot", BOT, env), code, naming)


def test_on_render_a_database_off_the_disk_is_refused(processes, tmp_path):
    with tmpfs(tmp_path / "disk", "16m") as disk:
        env = base_env(
            disk / "data", free_port(), RENDER="true", DATABASE_PATH=str(tmp_path / "x.db")
        )
        one_line_refusal(processes.start("render", WATCHDOG, env), 2, "DATABASE_PATH")


# -- a second, unprivileged user ----------------------------------------------------------------

SYSTEM_PYTHON = Path("/usr/bin/python3.11")


def as_nobody(argv: list[str], env: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """Run ``argv`` as ``nobody``. The venv's interpreter lives under /root (0700), so the
    same-version system interpreter runs the venv's packages instead."""
    if os.geteuid() != 0 or not SYSTEM_PYTHON.exists() or not shutil.which("runuser"):
        pytest.skip("needs root, runuser and /usr/bin/python3.11 to act as a second user")
    site = next((REPO / ".venv" / "lib").glob("python3.11/site-packages"))
    env = {**env, "PYTHONPATH": f"{REPO}{os.pathsep}{site}", "HOME": "/tmp"}
    program = [str(SYSTEM_PYTHON) if part == sys.executable else part for part in argv]
    return ["runuser", "-u", "nobody", "--", *program], env


def test_a_data_dir_this_user_cannot_write_is_refused_in_one_line(processes):
    place = Path(tempfile.mkdtemp(prefix="erixcast-readonly-", dir="/tmp"))
    try:
        place.chmod(0o755)  # root's: readable by all, writable by root only
        env = base_env(place / "data", free_port())
        (place / "data").mkdir(mode=0o755)
        argv, env = as_nobody(WATCHDOG, env)
        proc = processes.start("readonly", argv, env, cwd=Path("/tmp"))
        one_line_refusal(proc, EXIT_REFUSED, "DATA_DIR")
    finally:
        shutil.rmtree(place, ignore_errors=True)


def test_a_database_folder_this_user_cannot_write_is_refused_in_one_line(processes):
    place = Path(tempfile.mkdtemp(prefix="erixcast-dbfolder-", dir="/tmp"))
    try:
        place.chmod(0o755)
        data = place / "data"
        data.mkdir()
        shutil.chown(data, "nobody")
        (place / "db").mkdir(mode=0o755)  # root's
        env = base_env(data, free_port(), DATABASE_PATH=str(place / "db" / "erixcast.db"))
        argv, env = as_nobody(WATCHDOG, env)
        proc = processes.start("db-folder", argv, env, cwd=Path("/tmp"))
        one_line_refusal(proc, EXIT_BAD_SETTINGS, "DATABASE_PATH")
    finally:
        shutil.rmtree(place, ignore_errors=True)


# -- a dead supervisor --------------------------------------------------------------------------


def test_kill_9_of_supervisord_ends_the_watchdog_and_the_bot_and_the_next_start_works(
    processes, tmp_path, fake_api
):
    port = free_port()
    env = base_env(
        tmp_path / "data",
        port,
        TELEGRAM_BOT_TOKEN=fake_api.token,
        TELEGRAM_API_URL=fake_api.base_url,
    )
    supervisord = processes.start("supervisord", SUPERVISORD, env, cwd=tmp_path)
    doc = wait_until(lambda: (d := health(port))["bot"]["status"] == "running" and d, timeout=60)
    bot = psutil.Process(doc["bot"]["pid"])
    watchdog = bot.parent()
    supervisord.popen.send_signal(signal.SIGKILL)
    supervisord.wait(10)
    _gone, alive = psutil.wait_procs([watchdog, bot], timeout=30)
    assert not alive, f"still running after their supervisor died: {alive}"

    processes.start("supervisord-again", SUPERVISORD, env, cwd=tmp_path)
    wait_until(lambda: health(port)["bot"]["status"] == "running", timeout=60, what="a new stack")


def test_an_orphaned_watchdog_holding_the_lock_does_not_block_the_next_start(
    processes, tmp_path, fake_api
):
    """An orphan whose parent-death signal never came (here: a stand-in holding the lock, with a
    watchdog's command line, re-parented to init) is stopped by the next watchdog."""
    data = tmp_path / "data"
    lock = data / "run" / "watchdog.lock"
    lock.parent.mkdir(parents=True)
    holder = (
        "import fcntl, os, sys, time\n"
        f"fd = os.open({str(lock)!r}, os.O_RDWR | os.O_CREAT, 0o600)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "os.pwrite(fd, f'{os.getpid()}\\n'.encode(), 0)\n"
        "print(os.getpid(), flush=True)\n"
        "time.sleep(300)\n"
    )
    pid_file = tmp_path / "stand-in.pid"
    with pid_file.open("w") as out:
        subprocess.run(
            ["sh", "-c", f'{sys.executable} -c "$0" -m watchdog run &', holder],
            stdout=out,
            stdin=subprocess.DEVNULL,
            timeout=30,
            check=True,
        )
    pid = wait_until(lambda: pid_file.read_text().strip(), timeout=20, what="the stand-in's pid")
    orphan = psutil.Process(int(pid))
    try:
        wait_until(lambda: orphan.ppid() == 1, timeout=10, what="the stand-in re-parented")
        port = free_port()
        env = base_env(
            data, port, TELEGRAM_BOT_TOKEN=fake_api.token, TELEGRAM_API_URL=fake_api.base_url
        )
        processes.start("watchdog", WATCHDOG, env)
        wait_until(lambda: health(port)["bot"]["status"] == "running", timeout=60)
        assert not orphan.is_running() or orphan.status() == psutil.STATUS_ZOMBIE
    finally:
        if orphan.is_running():
            orphan.kill()


def test_a_live_supervised_watchdog_is_never_stopped_by_a_second_one(processes, tmp_path, fake_api):
    port = free_port()
    env = base_env(
        tmp_path / "data",
        port,
        TELEGRAM_BOT_TOKEN=fake_api.token,
        TELEGRAM_API_URL=fake_api.base_url,
    )
    first = processes.start("first", WATCHDOG, env)
    wait_until(lambda: health(port)["bot"]["status"] == "running", timeout=60)
    second = processes.start("second", WATCHDOG, {**env, "PORT": str(free_port())})
    assert second.wait(60) == EXIT_REFUSED
    assert first.popen.poll() is None


# -- owner-only files ---------------------------------------------------------------------------


def test_everything_under_data_dir_is_owner_only(processes, tmp_path, fake_api):
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    (data / "old-notes.txt").write_text("left by an earlier version")
    (data / "old-notes.txt").chmod(0o644)
    port = free_port()
    env = base_env(
        data, port, TELEGRAM_BOT_TOKEN=fake_api.token, TELEGRAM_API_URL=fake_api.base_url
    )
    proc = processes.start("watchdog", WATCHDOG, env)
    wait_until(lambda: health(port)["backups"]["tiers"]["hourly"], timeout=60, what="a backup")
    fake_api.send_text(41, "/start", first_name="Olga")
    fake_api.wait_for_sent(41, timeout=20)
    proc.popen.send_signal(signal.SIGTERM)
    proc.wait(30)
    loose = [
        f"{path} {stat.filemode(path.lstat().st_mode)}"
        for path in [data, *data.rglob("*")]
        if not path.is_symlink() and path.lstat().st_mode & 0o077
    ]
    assert not loose, loose
    assert (data / "erixcast.db").exists() and any((data / "backups").rglob("*.db"))


# -- files of the wrong shape ---------------------------------------------------------------------


def test_files_of_the_wrong_shape_are_set_aside_and_reported(processes, tmp_path, fake_api):
    data = tmp_path / "data"
    port = free_port()
    env = base_env(
        data, port, TELEGRAM_BOT_TOKEN=fake_api.token, TELEGRAM_API_URL=fake_api.base_url
    )
    first = processes.start("first", WATCHDOG, env)
    wait_until(lambda: health(port)["backups"]["tiers"]["hourly"], timeout=60, what="a backup")
    first.popen.send_signal(signal.SIGTERM)
    assert first.wait(30) == 0

    hourly = data / "backups" / "hourly"
    good = next(hourly.glob("*.json"))
    bad = json.loads(good.read_text())
    bad["created_at"] = "yesterday"
    (hourly / "20260101T000000Z-hourly-bad001.json").write_text(
        json.dumps({**bad, "id": "20260101T000000Z-hourly-bad001"})
    )
    (hourly / "20260101T000000Z-hourly-null01.json").write_text("null")
    huge = "20260101T000000Z-hourly-huge01"
    (hourly / f"{huge}.json").write_text(
        json.dumps({**bad, "id": huge, "file": f"{huge}.db", "created_at": 1e300})
    )
    (data / "watchdog-state.json").write_text(
        json.dumps({"fresh_start_at": "abc", "drill_at": 1e300})
    )
    note = data / "quarantine" / "20260101T000000Z"
    note.mkdir(parents=True)
    (note / "note.json").write_text("[]")

    second = processes.start("second", WATCHDOG, env)
    doc = wait_until(
        lambda: (d := health(port))["bot"]["status"] == "running" and d, timeout=60, what="running"
    )
    assert get_json(f"http://127.0.0.1:{port}/health")[0] == 200
    files = doc["checks"]["files"]
    assert files["status"] == "degraded"
    for kind in ("backup manifest", "state file", "quarantine note"):
        assert kind in files["detail"]
    assert str(data) not in json.dumps(doc), "no paths on a public endpoint"
    assert (note / "note.json.damaged").exists()
    assert json.loads(good.read_text())["id"] == good.stem, "the good manifest is untouched"
    assert second.popen.poll() is None


# -- the bot sees only its own settings -----------------------------------------------------------


def test_the_bot_gets_its_settings_from_the_watchdog_and_no_secret_it_does_not_use(
    processes, tmp_path, fake_api
):
    """Settings in an env file (as on a laptop): the bot still gets the token and its settings,
    and neither the file nor its environment gives it the git token, age key or stats token."""
    workdir = tmp_path / "checkout"
    workdir.mkdir()
    secrets = {
        "BACKUP_GIT_TOKEN": "ghp_gitTokenTheBotMustNotSee0123",
        "STATS_TOKEN": "stats-token-the-bot-must-not-see",
    }
    lines = [f"{key}={value}" for key, value in secrets.items()]
    lines += [f"TELEGRAM_BOT_TOKEN={fake_api.token}", f"TELEGRAM_API_URL={fake_api.base_url}"]
    (workdir / ".env").write_text("\n".join(lines) + "\n")
    port = free_port()
    env = base_env(tmp_path / "data", port, ENV_FILE=str(workdir / ".env"))
    processes.start("watchdog", WATCHDOG, env, cwd=workdir)
    doc = wait_until(lambda: (d := health(port))["bot"]["status"] == "running" and d, timeout=60)
    bot = psutil.Process(doc["bot"]["pid"])
    environment = bot.environ()
    assert environment["ENV_FILE"] == os.devnull
    assert environment["TELEGRAM_BOT_TOKEN"] == fake_api.token
    for key, value in secrets.items():
        assert key not in environment
        assert value not in " ".join(environment.values())
    fake_api.send_text(77, "/start", first_name="Nadia")
    assert "Nadia" in fake_api.wait_for_sent(77, timeout=20)["text"]
