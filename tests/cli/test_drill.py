def test_drill_restores_each_tiers_newest_backup(cli):
    assert cli("drill").returncode == 1  # nothing to drill yet
    cli("backup")
    cli("backup", "--tier", "weekly")
    done = cli("drill")
    assert done.returncode == 0, done.stdout
    assert done.stdout.count("ok") == 2 and "restored and read back" in done.stdout


def test_drill_fails_on_a_damaged_backup(cli):
    cli("backup", "--tier", "weekly")
    packed = next((cli.data / "backups" / "weekly").glob("*.zst"))
    data = bytearray(packed.read_bytes())
    data[100] ^= 0xFF
    packed.write_bytes(bytes(data))
    done = cli("drill")
    assert done.returncode == 1 and "FAILED" in done.stdout


def test_drill_while_the_stack_runs_is_done_and_recorded_by_the_watchdog(cli, stack):
    import json

    from tests.cli.conftest import traced

    done = traced(cli, "drill")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.touched_the_data() == []
    assert "restored and read back" in done.stdout
    assert "restore drill (asked from the command line) passed" in stack.log()
    health = json.loads(cli("status", "--json").stdout)
    assert health["backups"]["drill"]["ok"] is True
