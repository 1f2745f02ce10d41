"""Check once, and a fast start, with real processes: after a clean stop the start runs
``quick_check`` before launch and the full check with the bot up; a file changed while the stack
was down is checked fully first (or, changed without a trace, caught by the checks that follow);
a forged backup whose manifest matches its damaged bytes is installed on its hash, then caught by
the full check, and the recovery that follows refuses it."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests import forge
from tests.helpers import get_json, wait_until
from tests.integration.test_recovery import checkpoint, prepared, remove_companions, stack
from tests.integration.test_recovery_trust import damage_live, newest_plain
from watchdog.data.catalogue import Catalogue
from watchdog.data.cleanstop import read_facts, record_path, write_record

pytestmark = pytest.mark.integration
__all__ = ["stack"]


def stop(stack) -> None:
    """An orderly stop (SIGTERM, as a deploy sends), once the database was checked."""
    wait_until(
        lambda: stack.health()["database"]["integrity"] == "ok", timeout=30, what="a checked file"
    )
    stack.proc.popen.send_signal(signal.SIGTERM)
    assert stack.proc.wait(60) == 0


def database_detail(stack) -> str:
    return get_json(f"http://127.0.0.1:{stack.port}/stats")[1]["database"]["detail"] or ""


def running_with_full_check(stack) -> bool:
    doc = stack.health()
    return (
        doc["bot"]["status"] == "running"
        and doc["database"]["integrity"] == "ok"
        and doc["checks"]["database"]["detail"] == "integrity_check ok"  # no full check owed
    )


def test_after_a_clean_stop_quick_check_first_and_the_full_check_with_the_bot_up(stack):
    stack.start()
    stack.register(range(1, 4))
    stop(stack)
    assert record_path(stack.layout).is_file()
    stack.start()
    assert "start-up check: quick_check now" in stack.proc.output()
    assert "full integrity_check running" in stack.health()["checks"]["database"]["detail"] or (
        database_detail(stack).startswith("integrity_check ok")
    )
    assert not record_path(stack.layout).exists(), "a record vouches for one start only"
    wait_until(lambda: running_with_full_check(stack), timeout=30, what="the full check after")
    stack.answers()
    assert stack.health()["recovery"]["count"] == 0


def test_a_file_changed_while_the_stack_was_down_is_checked_fully_first(stack):
    stack.start()
    stack.register(range(1, 6))
    stack.wait_for_backups()
    before = stack.users()
    stop(stack)
    checkpoint(stack.database)
    remove_companions(stack.database)
    forge.damage_pages(stack.database, "users")
    stack.start()
    output = stack.proc.output()
    assert "start-up check: full" in output and "changed since the clean stop" in output
    stack.assert_recovered(before)
    assert stack.health()["bot"]["restarts"] == 0, "the bot never ran on the changed file"


def test_a_change_that_keeps_size_mtime_and_counter_is_still_caught(stack):
    stack.start()
    stack.register(range(1, 6))
    stack.wait_for_backups()
    before = stack.users()
    stop(stack)
    # The pages must be in the main file for a change to it to matter: checkpointed, and the
    # record a clean stop would then have left (the bot's last connection does not always
    # checkpoint, and the watchdog never writes the live file).
    checkpoint(stack.database)
    remove_companions(stack.database)
    record = write_record(stack.layout, "full-check", time.time())
    assert record is not None
    facts = record.facts
    forge.damage_pages(stack.database, "users")  # bytes 24–27 untouched, size unchanged
    remove_companions(stack.database)  # the empty -wal/-shm finding the pages left
    os.utime(stack.database, ns=(facts.mtime_ns, facts.mtime_ns))  # and the mtime put back
    assert read_facts(stack.database) == facts, "nothing the record holds tells it apart"
    stack.start()
    assert "start-up check: quick_check now" in stack.proc.output()
    stack.assert_recovered(before)  # quick_check before launch, or the full check right after


def test_a_forged_backup_matching_its_damaged_bytes_is_caught_after_install(stack):
    rows, _ = prepared(stack)  # ends with a kill -9: no clean-stop record
    forged = newest_plain(stack.layout)
    forge.damage_pages(forged.data_path, "users")
    forged = forge.relabel(forged, claim_checked=True)
    damage_live(stack.database)
    stack.start()
    doc = wait_until(
        lambda: (
            (d := stack.health())["recovery"]["count"] >= 2
            and d["bot"]["status"] == "running"
            and d["database"]["integrity"] == "ok"
            and d
        ),
        timeout=60,
        what="a second recovery after the full check of the hash-proven install",
    )
    last = doc["recovery"]["last"]
    assert last["restored_from"] != forged.id
    assert any(forged.id in r and "integrity_check failed" in r for r in last["rejected"])
    stack.assert_recovered(rows)
    wait_until(lambda: running_with_full_check(stack), timeout=30, what="a sound database")


def test_a_backup_altered_while_the_stack_was_down_is_refused_by_its_hash(stack):
    """Its bytes no longer match the manifest's sha256 (not relabelled): the recovery that needs
    it refuses it on the hash and installs an older one; the bot never runs on it."""
    rows, _ = prepared(stack)  # ends with a kill -9: no clean-stop record
    altered = newest_plain(stack.layout)
    catalogue = Catalogue(stack.layout)
    for later in catalogue.scan():  # a compressed tier taken after it would be tried first
        if later.manifest.created_at > altered.manifest.created_at:
            catalogue.remove(later)
    data = bytearray(altered.data_path.read_bytes())
    data[len(data) // 2] ^= 0x01
    altered.data_path.write_bytes(bytes(data))
    damage_live(stack.database)
    stack.start()
    doc = wait_until(
        lambda: (
            (d := stack.health())["recovery"]["count"] >= 1
            and d["database"]["integrity"] == "ok"
            and d
        ),
        timeout=60,
        what="a recovery that passes over the altered backup",
    )
    last = doc["recovery"]["last"]
    assert last["restored_from"] != altered.id
    assert any(altered.id in r and "sha256" in r for r in last["rejected"])
    stack.assert_recovered(rows)
