"""``python -m bot`` with DATABASE_URL: a server that cannot be used is one clear line and
EXIT_DATABASE (the watchdog checks the database, then relaunches with backoff), never a
traceback or the password; a server that can is where the bot keeps everything, without the
SQLite file or the update journal."""

from __future__ import annotations

import sys
from pathlib import Path

import psycopg
import pytest

from conf.exitcodes import EXIT_DATABASE
from tests.fakes.telegram_api import FakeTelegramAPI
from tests.helpers import ProcessPool, base_env, free_port, wait_until
from tests.pg import PASSWORD, PostgresServer

pytestmark = pytest.mark.integration


def run_bot(processes: ProcessPool, fake: FakeTelegramAPI, data_dir: Path, url: str) -> tuple:
    env = base_env(
        data_dir,
        free_port(),
        TELEGRAM_BOT_TOKEN=fake.token,
        TELEGRAM_API_URL=fake.base_url,
        DATABASE_URL=url,
    )
    proc = processes.start("bot", [sys.executable, "-m", "bot"], env)
    return proc.wait(60), proc.output()


def assert_one_clear_line(output: str, *expected: str) -> None:
    lines = [line for line in output.splitlines() if "cannot use the database" in line]
    assert len(lines) == 1, output
    for part in expected:
        assert part in lines[0], output
    assert "Traceback" not in output
    assert PASSWORD not in output and "wrong-password" not in output


def test_a_refused_password_is_one_line_and_exit_database(
    processes: ProcessPool, fake_api: FakeTelegramAPI, postgres: PostgresServer, tmp_path: Path
) -> None:
    database = postgres.create_database()
    url = postgres.url(database, password="wrong-password")
    code, output = run_bot(processes, fake_api, tmp_path / "data", url)
    assert code == EXIT_DATABASE
    assert_one_clear_line(
        output,
        f"postgresql://erixcast@127.0.0.1:{postgres.port}/{database}",
        "password authentication failed",
    )


def test_a_server_that_is_down_is_one_line_and_exit_database(
    processes: ProcessPool, fake_api: FakeTelegramAPI, tmp_path: Path
) -> None:
    port = free_port()  # nothing listens there
    url = f"postgresql://erixcast:{PASSWORD}@127.0.0.1:{port}/erixcast"
    code, output = run_bot(processes, fake_api, tmp_path / "data", url)
    assert code == EXIT_DATABASE
    assert_one_clear_line(output, f"127.0.0.1:{port}/erixcast", "refused")


def test_on_a_server_no_sqlite_file_and_no_journal(
    processes: ProcessPool, fake_api: FakeTelegramAPI, postgres: PostgresServer, tmp_path: Path
) -> None:
    url = postgres.url(postgres.create_database())
    data_dir = tmp_path / "data"
    env = base_env(
        data_dir,
        free_port(),
        TELEGRAM_BOT_TOKEN=fake_api.token,
        TELEGRAM_API_URL=fake_api.base_url,
        DATABASE_URL=url,
    )
    proc = processes.start("bot", [sys.executable, "-m", "bot"], env)
    fake_api.send_text(31, "/remember on the server")
    fake_api.wait_for_sent(31, contains="Noted as #1", timeout=30)

    def stored() -> bool:
        with psycopg.connect(url) as conn:
            return conn.execute("SELECT text FROM notes").fetchall() == [("on the server",)]

    wait_until(stored, 10, what="the note on the server")
    assert not (data_dir / "erixcast.db").exists()
    assert not list(data_dir.glob("journal/segment-*"))
    assert "bot starting: database postgresql://erixcast@127.0.0.1" in proc.output()
    assert PASSWORD not in proc.output()
