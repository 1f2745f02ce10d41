"""The journal under the whole stack: a database deleted in the middle of a burst, or with every
page of its messages damaged, comes back with every update Telegram was told is done."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from tests.helpers import base_env, free_port, wait_until
from tests.integration.test_recovery import ADMIN, Stack, checkpoint

pytestmark = pytest.mark.integration


@pytest.fixture
def stack(processes, tmp_path, fake_api) -> Stack:
    port = free_port()
    data = tmp_path / "data"
    env = base_env(
        data,
        port,
        TELEGRAM_BOT_TOKEN=fake_api.token,
        TELEGRAM_API_URL=fake_api.base_url,
        ADMIN_IDS=str(ADMIN),
        INTEGRITY_CHECK_EVERY="2s",
    )
    return Stack(processes, fake_api, data, port, env)


def stored_updates(database: Path) -> set[int]:
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5) as connection:
        return {row[0] for row in connection.execute("SELECT update_id FROM messages")}


def burst(stack: Stack, count: int, tag: str) -> list[int]:
    return [
        stack.fake.send_text(3000 + i % 4, f"{tag} {i}", first_name=f"B{i % 4}")
        for i in range(count)
    ]


def recovered(stack: Stack) -> dict:
    return wait_until(
        lambda: (
            (d := stack.health())["recovery"]["count"] >= 1
            and d["bot"]["status"] == "running"
            and d["database"]["integrity"] == "ok"
            and d
        ),
        timeout=60,
        what="recovery and a running bot",
    )


def all_confirmed(stack: Stack, update_ids: list[int]) -> None:
    wait_until(
        lambda: stack.fake.confirmed_offset > max(update_ids),
        timeout=60,
        what="every update confirmed to Telegram",
    )


def test_a_database_deleted_mid_burst_loses_no_acknowledged_update(stack):
    stack.start()
    stack.register(range(1, 4))
    stack.wait_for_backups()
    first = burst(stack, 40, "before")
    all_confirmed(stack, first)
    during = burst(stack, 80, "during")
    wait_until(
        lambda: stack.fake.confirmed_offset > during[10],
        timeout=30,
        what="the burst under way",
    )
    for path in (stack.database, *stack.layout.database_companions):
        path.unlink(missing_ok=True)
    doc = recovered(stack)
    all_confirmed(stack, during)
    acknowledged = {u for u in first + during if u < stack.fake.confirmed_offset}
    missing = acknowledged - stored_updates(stack.database)
    replay = doc["recovery"]["last"]["replay"]
    print(f"acknowledged {len(acknowledged)}, missing {len(missing)}; replay {replay}")
    assert not missing, f"{len(missing)} acknowledged updates lost"
    assert replay["ok"] and replay["replayed"] >= len(first)
    assert "replayed" in stack.fake.wait_for_sent(ADMIN, contains="journal", timeout=15)["text"]


def test_every_page_of_messages_damaged_comes_back_from_backup_and_journal(stack):
    stack.start()
    stack.register(range(1, 4))
    stack.wait_for_backups()
    after_backup = burst(stack, 60, "after the backup")
    all_confirmed(stack, after_backup)
    checkpoint(stack.database)
    size = stack.database.stat().st_size
    with stack.database.open("r+b") as handle:  # every page but the first
        handle.seek(4096)
        handle.write(b"\xa5" * (size - 4096))
        handle.flush()
        os.fsync(handle.fileno())
    doc = recovered(stack)
    missing = set(after_backup) - stored_updates(stack.database)
    assert not missing, f"{len(missing)} acknowledged updates lost"
    assert doc["recovery"]["last"]["replay"]["replayed"] >= len(after_backup)
    stack.answers()
