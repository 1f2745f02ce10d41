import json


def test_list_shows_a_table_newest_first(cli):
    cli("backup", "--reason", "first")
    cli("backup", "--tier", "daily")
    out = cli("list").stdout.splitlines()
    assert out[0].split() == ["TIER", "ID", "AGE", "SIZE", "MB", "ROWS", "VERIFIED"]
    assert out[1].startswith("daily") and out[2].startswith("manual")
    assert out[1].split()[-1] == "yes"


def test_list_filters_by_tier_and_speaks_json(cli):
    cli("backup")
    cli("backup", "--tier", "daily")
    listed = json.loads(cli("list", "--tier", "daily", "--json").stdout)
    assert len(listed) == 1
    assert {"id", "tier", "sha256", "rows", "size_bytes", "created_iso"} <= set(listed[0])
