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
