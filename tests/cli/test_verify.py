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
