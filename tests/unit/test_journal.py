"""The journal's format: what is written reads back, and whatever is torn, damaged or foreign
is cut, reported and set aside — never trusted, never a crash."""

from __future__ import annotations

import hashlib
import json
import stat

from hypothesis import given, settings
from hypothesis import strategies as st

from conf.journal import (
    ERASURE,
    ERASURES_FILE,
    UPDATE,
    JournalEntry,
    JournalLineError,
    JournalWriter,
    decode,
    encode,
    list_segments,
    read_journal,
    read_segment,
    set_aside_segments,
)


def update(update_id: int, user: int = 7, text: str = "hello") -> JournalEntry:
    raw = {
        "update_id": update_id,
        "message": {"message_id": update_id, "text": text, "from": {"id": user}},
    }
    return JournalEntry(UPDATE, update_id, 1_700_000_000.0 + update_id, user, raw)


def test_entries_read_back_in_order_across_segments(tmp_path):
    writer = JournalWriter(tmp_path, segment_bytes=600)
    assert writer.open() == []
    for first in range(0, 40, 4):
        writer.append([update(i) for i in range(first, first + 4)])
    writer.close()
    assert len(list_segments(tmp_path)) > 3
    read = read_journal(tmp_path)
    assert [e.update_id for e in read.updates] == list(range(40))
    assert read.updates[5].update["message"]["text"] == "hello"
    assert read.problems == []
    for path in tmp_path.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_an_update_journaled_twice_is_read_once(tmp_path):
    writer = JournalWriter(tmp_path)
    writer.open()
    writer.append([update(1), update(2)])
    writer.append([update(2), update(3)])  # redelivered after a kill before the commit
    assert [e.update_id for e in read_journal(tmp_path).updates] == [1, 2, 3]


def test_a_torn_last_line_is_cut_set_aside_and_reported(tmp_path):
    writer = JournalWriter(tmp_path)
    writer.open()
    writer.append([update(1), update(2)])
    writer.close()
    segment = list_segments(tmp_path)[-1]
    whole = segment.read_bytes()
    torn = encode(update(3))[:-9]
    segment.write_bytes(whole + torn)

    resumed = JournalWriter(tmp_path)
    problems = resumed.open()
    assert len(problems) == 1 and "torn" in problems[0] and "cut" in problems[0]
    assert segment.read_bytes() == whole
    (aside,) = tmp_path.glob("cut-*.bin")
    assert aside.read_bytes() == torn
    resumed.append([update(4)])
    assert [e.update_id for e in read_journal(tmp_path).updates] == [1, 2, 4]


def test_a_damaged_line_ends_what_is_read_of_its_segment(tmp_path):
    writer = JournalWriter(tmp_path)
    writer.open()
    writer.append([update(i) for i in range(1, 6)])
    writer.close()
    segment = list_segments(tmp_path)[-1]
    data = bytearray(segment.read_bytes())
    second = data.index(b"\n") + 1
    data[second + 40] ^= 0x01  # one bit of the second line
    segment.write_bytes(bytes(data))
    read = read_segment(segment)
    assert [e.update_id for e in read.entries] == [1]
    assert read.problem and "checksum" in read.problem and f"byte {second}" in read.problem
    assert read_journal(tmp_path).problems == [read.problem]


def test_erasure_takes_the_user_out_of_every_segment_and_is_kept(tmp_path):
    writer = JournalWriter(tmp_path, segment_bytes=500)
    writer.open()
    for i in range(30):
        writer.append([update(i, user=42 if i % 3 == 0 else 7)])
    removed = writer.erase_user(42, update_id=99, at=1_800_000_000.0)
    assert removed == 10
    writer.append([update(100, user=7)])  # the newest segment is still written after
    writer.close()
    read = read_journal(tmp_path)
    assert all(e.user_id != 42 for e in read.updates)
    assert [e.update_id for e in read.updates][-1] == 100
    assert len(read.updates) == 21
    assert [(e.kind, e.user_id, e.update_id) for e in read.erasures] == [(ERASURE, 42, 99)]
    assert (tmp_path / ERASURES_FILE).exists()
    for path in list_segments(tmp_path):
        assert b'"user":42' not in path.read_bytes()


def test_files_that_are_not_segments_are_not_read(tmp_path):
    (tmp_path / "segment-1.jsonl").write_text("not a segment name")
    (tmp_path / "notes.txt").write_text("foreign")
    writer = JournalWriter(tmp_path)
    writer.open()
    writer.append([update(1)])
    assert [p.name for p in list_segments(tmp_path)] == ["segment-00000001.jsonl"]


def _line(document: object) -> bytes:
    payload = json.dumps(document).encode()
    return hashlib.sha256(payload).hexdigest()[:16].encode() + b" " + payload + b"\n"


def test_lines_of_the_wrong_shape_are_refused():
    good = {"v": 1, "kind": "update", "update_id": 5, "at": 1.0, "user": 3,
            "update": {"update_id": 5}}  # fmt: skip
    assert decode(_line(good)).update_id == 5
    for change in (
        {"v": 2},
        {"kind": "command"},
        {"update_id": True},
        {"update_id": -1},
        {"at": "yesterday"},
        {"user": "3"},
        {"update": {"update_id": 6}},
        {"update": None},
    ):
        try:
            decode(_line({**good, **change}))
        except JournalLineError:
            continue
        raise AssertionError(f"accepted {change}")
    erasure = {"v": 1, "kind": "erasure", "update_id": 5, "at": 1.0, "user": None}
    for bad in (erasure, {**erasure, "user": 3, "update": {"update_id": 5}}):
        try:
            decode(_line(bad))
        except JournalLineError:
            continue
        raise AssertionError(f"accepted {bad}")
    assert decode(_line({**erasure, "user": 3})).kind == ERASURE


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_decode_to_an_entry_or_a_clear_refusal(data):
    try:
        decode(data)
    except JournalLineError:
        pass


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=2000))
def test_any_file_reads_without_raising(tmp_path_factory, data):
    folder = tmp_path_factory.mktemp("j")
    (folder / "segment-00000001.jsonl").write_bytes(data)
    read = read_journal(folder)
    assert read.updates == [] or read.problems is not None


def test_text_no_encoding_can_hold_round_trips_exactly(tmp_path):
    odd = "lone surrogate \ud800, NUL \x00, emoji 🚀, RTL \u202e"
    writer = JournalWriter(tmp_path)
    writer.open()
    writer.append([update(1, text=odd)])
    (entry,) = read_journal(tmp_path).updates
    assert entry.update["message"]["text"] == odd


def test_segments_set_aside_are_kept_but_never_read_and_erasures_stay(tmp_path):
    writer = JournalWriter(tmp_path)
    writer.open()
    writer.append([update(1), update(2, user=5)])
    writer.erase_user(5, update_id=3, at=1.0)
    writer.close()
    target = set_aside_segments(tmp_path, "20261201T120000Z")
    assert target is not None and [p.name for p in target.iterdir()] == ["segment-00000001.jsonl"]
    read = read_journal(tmp_path)
    assert read.updates == [] and [e.user_id for e in read.erasures] == [5]
    assert set_aside_segments(tmp_path, "again") is None


def test_a_batch_the_disk_could_not_take_is_cut_off_and_later_batches_read(tmp_path, monkeypatch):
    import errno

    import conf.journal as journal

    writer = JournalWriter(tmp_path)
    writer.open()
    writer.append([update(1)])
    real_write = journal.os.write

    def half_then_full(fd, data):
        real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(journal.os, "write", half_then_full)
    try:
        writer.append([update(2), update(3)])
    except OSError as error:
        assert error.errno == errno.ENOSPC
    else:
        raise AssertionError("a full disk must fail the append (and so the batch)")
    monkeypatch.setattr(journal.os, "write", real_write)
    writer.append([update(4)])
    read = read_journal(tmp_path)
    assert [e.update_id for e in read.updates] == [1, 4] and read.problems == []
