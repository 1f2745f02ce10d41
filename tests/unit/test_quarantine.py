"""Quarantine moves only the database's own regular files, and trusts no note it did not write."""

from __future__ import annotations

import json

import pytest

from conf.layout import DataLayout
from watchdog.data.recovery import list_quarantine, quarantine_database


@pytest.fixture
def layout(tmp_path) -> DataLayout:
    layout = DataLayout(tmp_path / "data", tmp_path / "data" / "erixcast.db")
    layout.ensure()
    return layout


def test_the_database_and_its_companions_move_together(layout):
    for path in (layout.database, *layout.database_companions):
        path.write_bytes(b"x")
    moved = quarantine_database(layout, "test", "detail", 1_800_000_000.0)
    assert moved is not None
    assert sorted(p.name for p in moved.folder.iterdir()) == sorted(
        ["erixcast.db", "erixcast.db-wal", "erixcast.db-shm", "note.json"]
    )
    assert not layout.database.exists()


def test_a_folder_at_the_database_path_is_never_moved(layout):
    layout.database.mkdir()
    (layout.database / "precious").write_text("the user's checkout")
    assert quarantine_database(layout, "test", "detail", 1_800_000_000.0) is None
    assert (layout.database / "precious").read_text() == "the user's checkout"
    assert not layout.quarantine.exists() or not any(layout.quarantine.iterdir())


def test_a_link_at_the_database_path_is_never_followed_or_moved(layout, tmp_path):
    elsewhere = tmp_path / "elsewhere.db"
    elsewhere.write_bytes(b"someone else's file")
    layout.database.symlink_to(elsewhere)
    assert quarantine_database(layout, "test", "detail", 1_800_000_000.0) is None
    assert layout.database.is_symlink() and elsewhere.read_bytes() == b"someone else's file"


@pytest.mark.parametrize(
    "note",
    [
        [],
        None,
        "text",
        {"database_name": "../../etc/passwd", "salvage": {"status": "pending"}},
        {"database_name": "/abs/path.db"},
        {"database_name": "erixcast.db", "salvage": "pending"},
        {"database_name": "erixcast.db", "restored_from": 12},
        {},
    ],
)
def test_a_note_of_the_wrong_shape_is_set_aside_never_trusted(layout, note):
    folder = layout.quarantine / "20261201T000000Z"
    folder.mkdir(parents=True)
    (folder / "erixcast.db").write_bytes(b"kept")
    (folder / "note.json").write_text(json.dumps(note))
    assert list_quarantine(layout) == []
    assert (folder / "note.json.damaged").exists()
    assert (folder / "erixcast.db").read_bytes() == b"kept"


def test_a_note_that_is_not_json_or_utf8_is_set_aside(layout):
    folder = layout.quarantine / "20261201T000000Z"
    folder.mkdir(parents=True)
    (folder / "note.json").write_bytes(b"\xff\xfe{")
    assert list_quarantine(layout) == []
    assert (folder / "note.json.damaged").exists()
