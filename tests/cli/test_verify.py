import json
from pathlib import Path


def test_verify_passes_then_fails_on_a_damaged_backup(cli):
    cli("backup")
    cli("backup", "--tier", "weekly")
    done = cli("verify", "--all")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("ok") >= 2
    manual = next(b for b in json.loads(cli("list", "--json").stdout) if b["tier"] == "manual")
    path = Path(cli.data / "backups" / "manual" / manual["file"])
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    done = cli("verify", "--all")
    assert done.returncode == 1
    assert "FAILED" in done.stdout and manual["id"] in done.stdout
    assert cli("verify", manual["id"]).returncode == 1


def test_verify_an_unknown_id(cli):
    done = cli("verify", "no-such-backup")
    assert done.returncode == 1
    assert "no backup with id" in done.stderr


def test_verify_while_the_stack_runs_is_done_by_the_watchdog(cli, stack):
    from tests.cli.conftest import traced

    done = traced(cli, "verify", "--all")
    assert done.returncode == 0, done.stderr
    assert done.touched_the_data() == []
    count = int(done.stdout.splitlines()[-1].split()[0])  # "N backups verified"
    assert count >= 2 and done.stdout.count("sha256 matches, integrity_check ok") == count
    assert f"{count} of {count} backups verified (asked from the command line)" in stack.log()
    unknown = traced(cli, "verify", "no-such-backup")
    assert unknown.returncode == 1 and "no backup with id 'no-such-backup'" in unknown.stderr
    assert unknown.touched_the_data() == []


def test_verify_of_a_damaged_backup_through_the_watchdog_fails(cli, stack):
    listed = json.loads(cli("list", "--json").stdout)
    hourly = next(b for b in listed if b["tier"] == "hourly")
    path = cli.data / "backups" / "hourly" / hourly["file"]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    done = cli("verify", hourly["id"])
    assert done.returncode == 1 and f"FAILED    {hourly['id']}" in done.stdout
    assert "0 of 1 backups verified (asked from the command line)" in stack.log()
