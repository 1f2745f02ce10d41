"""``python -m watchdog migrate`` against a real PostgreSQL server (``tests/pg.py``), a fresh
database per test: the round trip of a 100 MB database, a kill -9 in the middle of a batch, a
foreign target, a wrong password."""

from __future__ import annotations

import contextlib
import json
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from conf.erasures import record_erasure
from conf.schema import TABLES
from tests import dbgen
from tests.helpers import wait_until
from tests.pg import PASSWORD

KEYS = {
    "persistence": 'kind, name, "key"',
    "processed_updates": "update_id",
    "erasures": "user_id, update_id",
}


def fill_every_table(path: Path, target_bytes: int) -> None:
    """The bot's database grown to the size with messages, and rows in every other table:
    negative chat ids, NULLs, accents and emoji, composite keys, JSON values."""
    for old in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        old.unlink(missing_ok=True)
    dbgen.create_bot(path, target_bytes)
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.executemany(
            "INSERT INTO chats (id, type, title, username, first_seen, last_seen) "
            "VALUES (?, ?, ?, ?, '2026-01-01T00:00:00.000000+00:00', '2026-02-01T00:00:00.000000+00:00')",
            [(-100_000_000_000 - n, "supergroup", f"Grüße 🙂 {n}", None) for n in range(300)]
            + [(n, "private", None, f"user_{n}") for n in range(1, 300)],
        )
        conn.executemany(
            "INSERT INTO notes (user_id, text, created_at, source_chat_id, source_message_id) "
            "VALUES (?, ?, '2026-03-01T00:00:00.000000+00:00', ?, ?)",
            [(n % 50 + 1, f"café crème {n} — naïve", n if n % 3 else None, n) for n in range(2000)],
        )
        conn.executemany(
            "INSERT INTO persistence (kind, name, key, value, updated_at) VALUES (?, ?, ?, ?, 'x')",
            [
                ("user_data", "", str(n), json.dumps({"n": n, "s": "ü\u0001"}, ensure_ascii=False))
                for n in range(500)
            ]
            + [("conversation", "flow", json.dumps([n, n + 1]), '{"state":1}') for n in range(200)]
            + [("bot_data", "", "", "{}")],
        )
        conn.executemany(
            "INSERT INTO processed_updates (update_id, processed_at) VALUES (?, 'now')",
            [(900_000_000 + n,) for n in range(3000)],
        )
        conn.executemany(
            "INSERT INTO outbox (chat_id, method, params, created_at) VALUES (?, 'sendMessage', ?, 'now')",
            [(n, json.dumps({"text": f"hé {n}"})) for n in range(40)],
        )
        conn.executemany(
            "INSERT INTO erasures (user_id, update_id, erased_at) "
            "VALUES (?, ?, '2026-03-02T00:00:00.000000+00:00')",
            [(70_000 + n, 800_000_000 + n) for n in range(30)],
        )
        conn.executemany(
            "INSERT INTO outbox_claims (id, claimed_by, expires_ms) VALUES (?, 'host pid 1 ab', ?)",
            [(n, 1_800_000_000_000 + n) for n in range(1, 11)],
        )
        conn.execute("UPDATE messages SET edited_at = sent_at, update_id = id WHERE id % 7 = 0")
        conn.commit()
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def migrate(cli, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return cli("migrate", *args, timeout=timeout)


def pg_rows(url: str, table: str) -> Iterator[tuple[object, ...]]:
    columns = sqlite_columns(table)
    order = KEYS.get(table, "id")
    with psycopg.connect(url) as conn, conn.cursor(name="read") as cursor:
        cursor.itersize = 5000
        quoted = ", ".join(f'"{c}"' for c in columns)
        cursor.execute(f'SELECT {quoted} FROM "{table}" ORDER BY {order}')
        yield from cursor


def sqlite_columns(table: str) -> list[str]:
    with contextlib.closing(sqlite3.connect(":memory:")) as conn:
        from conf.schema import schema_sql

        conn.executescript(schema_sql())
        return [row[1] for row in conn.execute(f'PRAGMA table_info("{table}")')]


def sqlite_rows(path: Path, table: str) -> Iterator[tuple[object, ...]]:
    quoted = ", ".join(f'"{c}"' for c in sqlite_columns(table))
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        yield from conn.execute(f'SELECT {quoted} FROM "{table}" ORDER BY {KEYS.get(table, "id")}')


def same_rows(path: Path, url: str, but: tuple[str, ...] = ()) -> dict[str, int]:
    """Every row of every table (``but`` those) equal on both sides, in key order; rows per
    table."""
    counts = {}
    for table in (t for t in TABLES if t not in but):
        n = 0
        for n, (a, b) in enumerate(
            zip(sqlite_rows(path, table), pg_rows(url, table), strict=True), 1
        ):
            assert a == b, f"{table} row {n}: {a!r} != {b!r}"
        counts[table] = n
    return counts


def record(url: str) -> dict:
    with psycopg.connect(url) as conn:
        return json.loads(conn.execute("SELECT document FROM _erixcast_migration").fetchone()[0])


def bookkeeping_left(url: str) -> bool:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT to_regclass('_erixcast_migration')").fetchone()[0] is not None


@pytest.mark.timeout(1200)
def test_a_100_mb_database_round_trips_every_row(cli, postgres, tmp_path):
    fill_every_table(cli.database, 100 * 1024 * 1024)
    url = postgres.url(postgres.create_database())
    done = migrate(cli, "--to", url)
    assert done.returncode == 0, done.stderr
    assert PASSWORD not in done.stdout + done.stderr
    assert "DATABASE_URL=postgresql://erixcast:***@" in done.stdout
    assert not list((cli.data / "migrate").iterdir()), "the snapshot is removed once verified"

    assert not bookkeeping_left(url)
    again = migrate(cli, "--to", url)
    assert again.returncode == 0 and "already holds a finished migration" in again.stdout

    with psycopg.connect(url) as conn:
        # the identities moved past the copied ids; search works on the generated column
        top = conn.execute("SELECT max(id) FROM messages").fetchone()[0]
        new = conn.execute(
            "INSERT INTO notes (user_id, text, created_at) VALUES (1, 'x', 'y') RETURNING id"
        ).fetchone()[0]
        assert new == 2001
        found = conn.execute(
            "SELECT count(*) FROM notes WHERE search_vector @@ to_tsquery('simple', 'cafe & naive')"
        ).fetchone()[0]
        assert found == 2000
        assert (
            conn.execute(
                "INSERT INTO messages (chat_id, message_id, kind, sent_at) VALUES (1, -1, 't', 'y') RETURNING id"
            ).fetchone()[0]
            == top + 1
        )
        conn.rollback()

    back = tmp_path / "back.db"
    downgraded = migrate(cli, "--from", url, "--to-sqlite", str(back))
    assert downgraded.returncode == 0, downgraded.stderr
    assert "python -m watchdog restore" in downgraded.stdout
    # the server's erasures join the disk's record, for every later restore on SQLite
    record_lines = (cli.data / "journal" / "erasures.jsonl").read_bytes().splitlines()
    assert len(record_lines) == 30 and (cli.data / "backups" / "erasures.jsonl").exists()
    with contextlib.closing(sqlite3.connect(back)) as conn:
        conn.execute("ATTACH ? AS original", (f"file:{cli.database}?mode=ro",))
        for table in TABLES:
            ours = conn.execute(f'SELECT count(*) FROM main."{table}"').fetchone()[0]
            theirs = conn.execute(f'SELECT count(*) FROM original."{table}"').fetchone()[0]
            assert ours == theirs > 0, table
            for a, b in (("main", "original"), ("original", "main")):
                extra = conn.execute(
                    f'SELECT count(*) FROM (SELECT * FROM {a}."{table}" EXCEPT SELECT * FROM {b}."{table}")'
                ).fetchone()[0]
                assert extra == 0, f"{table}: {extra} rows of {a} not in {b}"
        hits = conn.execute(
            "SELECT count(*) FROM notes_fts WHERE notes_fts MATCH 'cafe naive'"
        ).fetchone()[0]
        assert hits == 2000
    backup_id = downgraded.stdout.split("restore ")[-1].split()[0]
    listed = json.loads(cli("list", "--json").stdout)
    assert any(b["id"] == backup_id for b in listed)
    assert cli("restore", backup_id, "--dry-run").returncode == 0


@pytest.mark.timeout(600)
def test_a_kill_in_the_middle_of_a_batch_then_a_rerun_copies_each_row_once(cli, postgres):
    fill_every_table(cli.database, 15 * 1024 * 1024)
    # an erasure of the SQLite days, in the disk's record only: the server's record takes it
    record_erasure(cli.data / "journal", 4242, 17, 1_770_000_000.0)
    url = postgres.url(postgres.create_database())
    proc = subprocess.Popen(
        [sys.executable, "-m", "watchdog", "migrate", "--to", url, "--batch-rows", "500"],
        env=cli.env,
        cwd=cli.cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    blocker = psycopg.connect(url)
    try:

        def copying() -> bool:
            if proc.poll() is not None:
                return True
            with contextlib.suppress(psycopg.Error), psycopg.connect(url) as conn:
                document = conn.execute("SELECT document FROM _erixcast_migration").fetchone()
                return sum(t["copied"] for t in json.loads(document[0])["tables"]) >= 1000
            return False

        wait_until(copying, 120, interval=0.02, what="the first batches committed")
        assert proc.poll() is None, "the migration ended before it could be stopped"
        # The next batch's record update now waits on this lock: the kill lands inside a batch
        # whose rows are already sent.
        blocker.execute("LOCK TABLE _erixcast_migration IN EXCLUSIVE MODE")

        def waiting() -> bool:
            row = blocker.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'erixcast-migrate' "
                "AND wait_event_type = 'Lock'"
            ).fetchone()
            return bool(row and row[0])

        wait_until(waiting, 60, what="the migration waiting inside a batch")
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        blocker.rollback()
        blocker.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)

    halfway = record(url)
    copied = {t["name"]: t["copied"] for t in halfway["tables"]}
    with psycopg.connect(url) as conn:
        for table, n in copied.items():
            assert conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0] == n, table
    assert 0 < sum(copied.values()) < sum(t["total"] for t in halfway["tables"])

    done = migrate(cli, "--to", url)
    assert done.returncode == 0, done.stderr
    counts = same_rows(cli.database, url, but=("erasures",))
    totals = {t["name"]: t["total"] for t in halfway["tables"]}
    assert counts == {name: n for name, n in totals.items() if name != "erasures"}
    assert not bookkeeping_left(url), "the bookkeeping table stays once verified"
    # the erasures table: the file's 30 rows, and the disk record's erasure joined them
    assert sorted(sqlite_rows(cli.database, "erasures")) == sorted(
        row for row in pg_rows(url, "erasures") if row[0] != 4242
    )
    assert [row[:2] for row in pg_rows(url, "erasures") if row[0] == 4242] == [(4242, 17)]
    assert totals["erasures"] == 30
    again = migrate(cli, "--to", url)
    assert again.returncode == 0 and "already holds a finished migration" in again.stdout


def test_a_foreign_target_is_refused_and_left_alone(cli, postgres):
    url = postgres.url(postgres.create_database())
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE invoices (id int PRIMARY KEY)")
        conn.execute("INSERT INTO invoices VALUES (1)")
    done = migrate(cli, "--to", url)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "not empty" in lines[0] and "invoices" in lines[0], done.stderr
    assert PASSWORD not in done.stderr + done.stdout
    with psycopg.connect(url) as conn:
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchall()
        assert tables == [("invoices",)]
    assert not (cli.data / "migrate").exists(), "refused before any snapshot was taken"


def test_a_wrong_password_is_one_clear_line_without_it(cli, postgres):
    database = postgres.create_database()
    wrong = "not-the-Password-42"
    for args in (
        ("--to", postgres.url(database, password=wrong)),
        ("--from", postgres.url(database, password=wrong), "--to-sqlite", str(cli.cwd / "x.db")),
    ):
        done = migrate(cli, *args)
        assert done.returncode == 1
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert "password authentication failed" in lines[0]
        assert wrong not in done.stderr + done.stdout
        assert f"postgresql://erixcast@127.0.0.1:{postgres.port}/{database}" in lines[0]
    assert not (cli.cwd / "x.db").exists()


@pytest.mark.parametrize(
    "args, says",
    [
        (("--from", "postgresql://u@127.0.0.1/x"), "--to-sqlite"),
        (("--to", "mysql://u:hunter2@h/x"), "must be a PostgreSQL URL"),
        (("--to", "postgresql://u:hunter2@127.0.0.1:1/"), "names no database"),
    ],
)
def test_bad_command_lines_say_what_is_wrong(cli, args, says):
    done = migrate(cli, *args)
    assert done.returncode != 0 and says in done.stderr
    assert "hunter2" not in done.stderr


def test_the_downgrade_never_overwrites_a_file(cli, postgres):
    url = postgres.url(postgres.create_database())
    assert migrate(cli, "--to", url).returncode == 0
    existing = cli.cwd / "there.db"
    existing.write_bytes(b"keep me")
    done = migrate(cli, "--from", url, "--to-sqlite", str(existing))
    assert done.returncode == 1 and "already exists" in done.stderr
    assert existing.read_bytes() == b"keep me"


def test_help_explains_both_directions(cli):
    done = cli("migrate", "--help")
    assert done.returncode == 0
    for words in ("--to", "--from", "--to-sqlite", "EMPTY", "PGPASSWORD", "restore"):
        assert words in done.stdout
