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


def test_list_while_the_stack_runs_comes_from_the_watchdog(cli, stack):
    from tests.cli.conftest import traced

    done = traced(cli, "list", "--json")
    assert done.returncode == 0, done.stderr
    assert done.touched_the_data() == []
    listed = json.loads(done.stdout)
    assert {"hourly", "daily", "weekly"} <= {b["tier"] for b in listed}
    assert [b["created_at"] for b in listed] == sorted(
        (b["created_at"] for b in listed), reverse=True
    )
    table = traced(cli, "list", "--tier", "weekly")
    assert table.stdout.splitlines()[1].startswith("weekly") and len(table.stdout.splitlines()) == 2
