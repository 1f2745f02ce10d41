"""The per-user limits' pure pieces: the token bucket, the quota book, one page of /notes, and
the streamed export's files (real files, a real SQLite database)."""

from __future__ import annotations

import asyncio
import gzip
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.export import ExportTooLarge, PartFiles, clean_exports, write_export
from bot.handlers.formatting import MESSAGE_LIMIT
from bot.handlers.notes import NOTES_PAGE_DATA, notes_keyboard, notes_page_text
from bot.limits import ROW_BYTES, QuotaBook, RateLimiter, Verdict, stored_size
from bot.storage import DatabaseThread, IncomingMessage, Note, Storage

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# ------------------------------------------------------------------------------ token bucket
def test_a_burst_passes_then_one_notice_then_quiet() -> None:
    clock = Clock()
    limiter = RateLimiter(per_minute=60, burst=3, clock=clock)
    assert [limiter.take(1) for _ in range(3)] == [Verdict.PASS] * 3
    assert limiter.take(1) is Verdict.TELL
    assert [limiter.take(1) for _ in range(5)] == [Verdict.QUIET] * 5
    assert limiter.take(2) is Verdict.PASS, "another user has their own bucket"
    assert limiter.wait_seconds(1) == 1


def test_the_bucket_refills_at_the_rate_and_an_episode_ends_only_when_full() -> None:
    clock = Clock()
    limiter = RateLimiter(per_minute=60, burst=3, clock=clock)
    for _ in range(3):
        limiter.take(1)
    assert limiter.take(1) is Verdict.TELL
    clock.now += 1.0  # one token back
    assert limiter.take(1) is Verdict.PASS
    assert limiter.take(1) is Verdict.QUIET, "still the same episode: not told twice"
    clock.now += 3.0  # full again: the user rested
    for _ in range(3):
        assert limiter.take(1) is Verdict.PASS
    assert limiter.take(1) is Verdict.TELL, "a new episode is told again"


def test_a_clock_going_back_gives_no_tokens() -> None:
    clock = Clock()
    limiter = RateLimiter(per_minute=60, burst=1, clock=clock)
    assert limiter.take(1) is Verdict.PASS
    clock.now -= 100
    assert limiter.take(1) is Verdict.TELL


def test_rested_users_are_forgotten_when_many() -> None:
    clock = Clock()
    limiter = RateLimiter(per_minute=60, burst=2, clock=clock, max_users=10)
    for user in range(10):
        limiter.take(user)
    clock.now += 10  # everyone full again
    limiter.take(99)
    assert len(limiter) == 1
    with pytest.raises(ValueError):
        RateLimiter(per_minute=0, burst=1)


# --------------------------------------------------------------------------------- the quota
def test_the_quota_book_counts_and_refuses_past_the_limit() -> None:
    clock = Clock()
    book = QuotaBook(1000, clock=clock, notice_every=60)
    assert not book.known(5)
    book.add(5, 100)
    assert not book.known(5), "an uncounted user stays uncounted"
    book.set(5, 900)
    assert book.allows(5, 100) and not book.allows(5, 101)
    book.add(5, 100)
    assert not book.allows(5, 1) and book.allows(5, 0)
    book.add(5, -500)
    assert book.used(5) == 500
    assert book.should_tell(5) and not book.should_tell(5)
    clock.now += 61
    assert book.should_tell(5)
    book.forget(5)
    assert not book.known(5)
    with pytest.raises(KeyError):
        book.allows(5, 1)


def test_the_quota_book_keeps_a_bounded_number_of_users() -> None:
    book = QuotaBook(1000, max_users=3)
    for user in range(5):
        book.set(user, user)
    assert [book.known(user) for user in range(5)] == [False, False, True, True, True]


def test_stored_size_is_what_the_database_sums(tmp_path: Path) -> None:
    storage = Storage.open(tmp_path / "q.db")
    try:
        texts = ["hello", "ça va? 🦊", None, "x" * 4000]
        for number, text in enumerate(texts, start=1):
            kind = "photo" if text is None else "text"
            storage.record_message(
                IncomingMessage(7, number, 7, kind, text, T0), {"id": 7}, {"id": 7}, T0
            )
        storage.add_note(7, "a note ✓", T0, (7, 100))
        storage.record_message(IncomingMessage(8, 1, 8, "text", "other", T0), None, {"id": 8}, T0)
        expected = sum(stored_size(text) for text in [*texts, "a note ✓"])
        assert storage.stored_bytes(7) == expected
        assert stored_size(None) == ROW_BYTES
        assert storage.stored_bytes(9) == 0
    finally:
        storage.close()


# ------------------------------------------------------------------------------ /notes pages
def test_a_page_of_the_longest_notes_fits_one_message() -> None:
    notes = [Note(20000 + n, n, "ü" * 4096, T0) for n in range(10)]
    text = notes_page_text(notes, 1_000_000, 99_999, 100_000)
    assert len(text) <= MESSAGE_LIMIT
    assert text.splitlines()[0] == "Your notes (1,000,000), page 100,000 of 100,000:"
    assert len(text.splitlines()) == 11


def test_the_buttons_name_only_pages_that_exist() -> None:
    assert notes_keyboard(0, 1) is None
    first = notes_keyboard(0, 3)
    assert first is not None
    assert [b.callback_data for b in first.inline_keyboard[0]] == ["notes:page:1"]
    middle = notes_keyboard(1, 3)
    assert middle is not None
    assert [b.callback_data for b in middle.inline_keyboard[0]] == ["notes:page:0", "notes:page:2"]
    for data in ("notes:page:-1", "notes:page:1e9", "notes:page:12345678", "notes:page:1 ", "x"):
        assert NOTES_PAGE_DATA.fullmatch(data) is None, data
    assert NOTES_PAGE_DATA.fullmatch("notes:page:1999") is not None


# ----------------------------------------------------------------------------------- /export
def _filled(path: Path, messages: int, notes: int) -> Storage:
    storage = Storage.open(path)
    with storage.db:
        for n in range(1, messages + 1):
            storage.record_message(
                IncomingMessage(7, n, 7, "text", f"message {n} " + "é" * (n % 50), T0),
                {"id": 7, "first_name": "Ann"},
                {"id": 7, "type": "private"},
                T0,
            )
        for n in range(1, notes + 1):
            storage.add_note(7, f"note {n}", T0, (7, 100_000 + n))
    return storage


def _export(storage: Storage, folder: Path, **kw: int) -> object:
    db = DatabaseThread()
    try:
        return asyncio.run(write_export(storage, db, 7, folder, T0, **kw))
    finally:
        db.shutdown()


def test_an_export_is_read_in_pages_and_split_into_parts_that_join(tmp_path: Path) -> None:
    storage = _filled(tmp_path / "e.db", messages=2500, notes=1200)
    folder = tmp_path / "exports"
    try:
        files = _export(storage, folder, page_rows=1000, part_bytes=4096, max_parts=100)
    finally:
        storage.close()
    assert files.messages == 2500 and files.notes == 1200
    assert len(files.parts) > 1 and all(p.stat().st_size <= 4096 for p in files.parts)
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in files.parts)
    joined = b"".join(part.read_bytes() for part in files.parts)
    document = json.loads(gzip.decompress(joined))
    assert document["format"] == "erixcast-export/1" and document["user"]["id"] == 7
    assert [m["message_id"] for m in document["messages"]] == list(range(1, 2501))
    assert [n["number"] for n in document["notes"]] == list(range(1, 1201))
    assert document["notes"][-1]["text"] == "note 1200"
    assert "id" not in document["messages"][0]
    files.remove()
    assert list(folder.iterdir()) == []


def test_an_export_over_the_parts_allowed_is_refused_and_leaves_nothing(tmp_path: Path) -> None:
    storage = _filled(tmp_path / "e.db", messages=3000, notes=0)
    folder = tmp_path / "exports"
    try:
        with pytest.raises(ExportTooLarge):
            _export(storage, folder, part_bytes=1024, max_parts=3)
    finally:
        storage.close()
    assert list(folder.iterdir()) == []


def test_an_empty_export_is_a_valid_document(tmp_path: Path) -> None:
    storage = Storage.open(tmp_path / "e.db")
    try:
        files = _export(storage, tmp_path / "x")
    finally:
        storage.close()
    document = json.loads(gzip.decompress(files.parts[0].read_bytes()))
    assert document["user"] is None and document["notes"] == [] and document["messages"] == []


def test_leftovers_of_an_interrupted_export_are_cleaned(tmp_path: Path) -> None:
    parts = PartFiles(tmp_path, "erixcast-export-7-abcd.json.gz", 10, 5)
    parts.write(b"x" * 25)
    parts.close()
    (tmp_path / "someone-else.txt").write_text("kept")
    assert clean_exports(tmp_path) == 3
    assert [p.name for p in tmp_path.iterdir()] == ["someone-else.txt"]
    assert clean_exports(tmp_path / "missing") == 0
