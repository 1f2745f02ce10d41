"""Every file the watchdog reads from DATA_DIR goes through one loader per format; fed random
and mutated JSON, each loader either returns something of its own type or raises the one error
it declares — never anything else, never a crash further on."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conf.layout import DataLayout
from watchdog.data.catalogue import Catalogue, Manifest, parse_manifest
from watchdog.data.recovery import list_quarantine, parse_note
from watchdog.data.remembered import Remembered, RememberedStore, parse
from watchdog.offsite.index import IndexEntry

GOOD_MANIFEST = {
    "id": "20261201T000000Z-hourly-abc123",
    "tier": "hourly",
    "reason": "scheduled",
    "created_at": 1_800_000_000.0,
    "size_bytes": 4096,
    "sha256": "a" * 64,
    "file": "20261201T000000Z-hourly-abc123.db",
    "file_size": 4096,
    "file_sha256": "a" * 64,
    "compression": None,
    "rows": {"users": 3},
    "sqlite_version": "3.40.1",
    "app_version": "dev",
    "duration_s": 0.1,
    "format": 1,
    "extra": {},
}
GOOD_STATE = {"app_version": "v1", "database_seen": True, "known_tables": ["users"]}
GOOD_NOTE = {"database_name": "erixcast.db", "reason": "x", "salvage": {"status": "pending"}}

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)


def mutated(good: dict) -> st.SearchStrategy:
    """The good document with some of its keys replaced by random values, or dropped."""
    keys = sorted(good)
    return st.fixed_dictionaries(
        {},
        optional={key: st.one_of(st.just(good[key]), json_values) for key in keys},
    )


def documents(good: dict) -> st.SearchStrategy:
    return st.one_of(json_values, mutated(good))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(documents(GOOD_MANIFEST))
def test_manifest_loader(document):
    try:
        manifest = parse_manifest(document)
    except ValueError:
        return
    assert isinstance(manifest, Manifest)
    assert isinstance(manifest.created_at, float) and math.isfinite(manifest.created_at)
    assert isinstance(manifest.size_bytes, int) and manifest.size_bytes >= 0
    assert all(isinstance(v, int) for v in manifest.rows.values())
    assert Manifest.from_json(manifest.to_json()) == manifest


@settings(max_examples=300)
@given(documents(GOOD_STATE))
def test_state_loader(document):
    record, problems = parse(document)
    assert isinstance(record, Remembered)
    assert isinstance(problems, list)
    assert record.fresh_start_at is None or isinstance(record.fresh_start_at, float)
    assert all(isinstance(name, str) for name in record.known_tables)
    assert isinstance(record.database_seen, bool)


@settings(max_examples=300)
@given(documents(GOOD_NOTE))
def test_quarantine_note_loader(document):
    try:
        note = parse_note(document)
    except ValueError:
        return
    assert "/" not in note["database_name"] and note["database_name"] not in ("", ".", "..")


@settings(max_examples=300)
@given(
    documents({"id": "x", "commit": "a" * 40, "tree": "c" * 40, "format": 1}),
    st.sampled_from([1, 2]),
)
def test_offsite_index_entry_loader(document, index_format):
    try:
        entry = IndexEntry.from_index(document, "b" * 40, index_format)
    except (ValueError, KeyError, TypeError):
        return
    assert not entry.id.startswith("-") and "/" not in entry.id
    assert len(entry.commit) in (40, 64) and not entry.commit.startswith("-")


@pytest.mark.parametrize(
    "text", ["", "{", "null", "[]", '"x"', "1e999", '{"fresh_start_at": "abc"}', "\udcff"]
)
def test_a_bad_state_file_is_set_aside_and_the_rest_kept(tmp_path, text):
    path = tmp_path / "watchdog-state.json"
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    record = RememberedStore(path).load()
    assert record.fresh_start_at is None
    assert (tmp_path / "watchdog-state.json.damaged").exists()


@settings(max_examples=60, deadline=None)
@given(st.lists(documents(GOOD_MANIFEST), max_size=4), st.lists(json_values, max_size=3))
def test_a_catalogue_and_a_quarantine_full_of_junk_scan_without_crashing(
    tmp_path_factory, manifests, notes
):
    root = tmp_path_factory.mktemp("data")
    layout = DataLayout(root, root / "erixcast.db")
    layout.ensure()
    hourly = layout.tier("hourly")
    hourly.mkdir(parents=True)
    for number, document in enumerate(manifests):
        (hourly / f"m{number}.json").write_text(json.dumps(document))
    for number, document in enumerate(notes):
        folder = layout.quarantine / f"q{number}"
        folder.mkdir(parents=True)
        (folder / "note.json").write_text(json.dumps(document))
    backups = Catalogue(layout).scan()
    assert all(isinstance(b.manifest, Manifest) for b in backups)
    assert all(isinstance(entry.note, dict) for entry in list_quarantine(layout))
