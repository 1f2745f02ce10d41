import re
import signal
import sqlite3
import sys

from tests.helpers import get_json, wait_until


def messages(database) -> int:
    with sqlite3.connect(database) as connection:
        return connection.execute("SELECT count(*) FROM messages").fetchone()[0]


def add_rows(database, n: int = 10) -> None:
    with sqlite3.connect(database) as connection:
        connection.executemany(
            "INSERT INTO messages (chat_id, message_id, user_id, kind, text, sent_at) "
            "VALUES (1, ?, 1, 'text', ?, 'x')",
            [(10_000_000 + i, f"after {i}") for i in range(n)],
        )


def users_in(database) -> set[int]:
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5) as connection:
        return {row[0] for row in connection.execute("SELECT id FROM users")}


def test_restore_latest_quarantines_the_current_database(cli):
    assert cli("backup").returncode == 0
    before = messages(cli.database)
    add_rows(cli.database)
    done = cli("restore", "latest", "--yes")
    assert done.returncode == 0, done.stderr
    assert "restored backup" in done.stdout
    assert messages(cli.database) == before
    kept = list((cli.data / "quarantine").glob("*/erixcast.db"))
    assert len(kept) == 1 and messages(kept[0]) == before + 10


def test_dry_run_changes_nothing(cli):
    cli("backup")
    add_rows(cli.database)
    count = messages(cli.database)
    done = cli("restore", "--dry-run")
    assert done.returncode == 0 and "would restore" in done.stdout and "verified" in done.stdout
    assert messages(cli.database) == count
    assert not (cli.data / "quarantine").exists()


def test_refuses_what_is_not_a_verified_backup(cli, tmp_path):
    cli("backup")
    stray = tmp_path / "stray.db"
    stray.write_bytes(cli.database.read_bytes())
    done = cli("restore", str(stray), "--yes")
    assert done.returncode == 1
    assert "not a verified backup" in done.stderr
    assert not (cli.data / "quarantine").exists()


def test_a_damaged_backup_is_refused_before_anything_changes(cli):
    cli("backup")
    backup = next((cli.data / "backups" / "manual").glob("*.db"))
    data = bytearray(backup.read_bytes())
    data[len(data) // 2] ^= 0xFF
    backup.write_bytes(bytes(data))
    count = messages(cli.database)
    done = cli("restore", "latest", "--yes")
    assert done.returncode == 1 and "does not verify" in done.stderr
    assert messages(cli.database) == count


def test_asks_for_yes_when_not_interactive(cli):
    cli("backup")
    done = cli("restore")
    assert done.returncode == 1 and "--yes" in done.stderr


def test_while_the_stack_runs_the_watchdog_restores_replays_and_relaunches(
    cli, processes, fake_api
):
    env = {**cli.env, "TELEGRAM_BOT_TOKEN": fake_api.token, "TELEGRAM_API_URL": fake_api.base_url}
    cli.env = env
    cli.database.unlink()  # let the bot make its own database
    proc = processes.start("watchdog", [sys.executable, "-m", "watchdog", "run"], env)

    def health() -> dict:
        return get_json(f"http://127.0.0.1:{cli.port}/health")[1]

    wait_until(lambda: health()["bot"]["status"] == "running", timeout=30)
    fake_api.send_text(1, "/start", first_name="Ann")
    fake_api.wait_for_sent(1, timeout=20)
    wait_until(lambda: users_in(cli.database) == {1}, timeout=20)
    made = cli("backup")
    assert made.returncode == 0
    backup_id = made.stdout.split()[1]  # "backup <id> (manual): …"
    fake_api.send_text(2, "/start", first_name="Bob")
    fake_api.wait_for_sent(2, timeout=20)
    wait_until(lambda: users_in(cli.database) == {1, 2}, timeout=20)

    def restore(*flags: str) -> str:
        old_bot = health()["bot"]["pid"]
        # By id: the watchdog's own scheduled backups may be newer than ours (and hold Bob).
        done = cli("restore", backup_id, "--yes", *flags)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "restored backup" in done.stdout
        wait_until(
            lambda: (d := health())["bot"]["status"] == "running" and d["bot"]["pid"] != old_bot,
            timeout=30,
        )
        return done.stdout

    # Bob came after the backup: the journal brings him back.
    assert "replayed 1 updates from the journal" in restore()
    assert users_in(cli.database) == {1, 2}
    assert health()["recovery"]["last_replay"]["replayed"] == 1
    # On purpose to the earlier state: the journal is set aside, Bob is new again.
    assert "the journal was not replayed" in restore("--no-replay")
    assert users_in(cli.database) == {1}
    assert list((cli.data / "journal").glob("set-aside-*/segment-*.jsonl"))
    sent = len(fake_api.sent(2))
    fake_api.send_text(2, "/start", first_name="Bob")
    assert "Nice to meet you" in fake_api.wait_for_sent(2, timeout=20, after=sent)["text"]
    proc.popen.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0


def test_restore_while_the_stack_runs_is_a_job_of_the_watchdog(cli, stack):
    from tests.cli.conftest import traced

    made = cli("backup")
    assert made.returncode == 0, made.stderr
    backup_id = made.stdout.split()[1]
    done = traced(cli, "restore", backup_id, "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.touched_the_data() == []
    assert f"restored backup {backup_id}" in done.stdout
    assert re.search(r"admin job restore-\d+ done", stack.log())
    assert len(list((cli.data / "quarantine").glob("*/erixcast.db"))) == 1
    refused = traced(cli, "restore", "no-such-backup", "--yes")
    assert refused.returncode == 1 and refused.stdout.startswith("refused: ")
    assert re.search(r"admin job restore-\d+ failed", stack.log())
