import json


def test_backup_adds_a_verified_manual_backup(cli):
    done = cli("backup")
    assert done.returncode == 0, done.stderr
    assert "(manual)" in done.stdout and "rows" in done.stdout
    listed = json.loads(cli("list", "--json").stdout)
    assert [item["tier"] for item in listed] == ["manual"]


def test_backup_into_another_tier(cli):
    assert cli("backup", "--tier", "weekly").returncode == 0
    assert json.loads(cli("list", "--json").stdout)[0]["compression"] == "zstd"


def test_backup_of_no_database_fails_and_adds_nothing(cli):
    cli.database.unlink()
    done = cli("backup")
    assert done.returncode == 1
    assert "nothing was added" in done.stderr
    assert cli("list").stdout.strip() == "no backups yet"


def test_help():
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "watchdog", "backup", "--help"], capture_output=True, text=True
    )
    assert done.returncode == 0 and "--tier" in done.stdout


def test_backup_while_the_stack_runs_is_taken_by_the_watchdog(cli, stack):
    from tests.cli.conftest import traced

    done = traced(cli, "backup", "--reason", "asked in a test")
    assert done.returncode == 0, done.stderr
    backup_id = done.stdout.split()[1]
    assert done.touched_the_data() == [], "the command opened the data itself"
    assert f"manual backup {backup_id} taken (asked from the command line)" in stack.log()
    listed = json.loads(cli("list", "--json").stdout)
    assert any(b["id"] == backup_id and b["reason"] == "asked in a test" for b in listed)


def test_a_bad_tier_is_refused_by_the_parser(cli):
    done = cli("backup", "--tier", "yearly")
    assert done.returncode == 2 and "invalid choice" in done.stderr
