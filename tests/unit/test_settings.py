import os
from pathlib import Path

import pytest

from conf.settings import FIELDS, SettingsError, env_name, load_settings

SETTING_VARS = [env_name(name) for name in FIELDS]
INTERNAL_VARS = {name for name in SETTING_VARS if name.startswith("ERIXCAST_")}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch, tmp_path):
    for name in SETTING_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ENV_FILE", os.devnull)
    monkeypatch.chdir(tmp_path)


def test_defaults_match_the_design(tmp_path):
    settings = load_settings()
    assert settings.telegram_bot_token is None
    assert settings.telegram_api_url == "https://api.telegram.org/bot"
    assert settings.admin_ids == ()
    assert settings.data_dir == tmp_path / "data"
    assert settings.database == tmp_path / "data" / "erixcast.db"
    assert (settings.port, settings.host) == (10000, "0.0.0.0")
    assert settings.backup_hourly_every == 3600
    assert settings.backup_daily_every == 86400
    assert settings.backup_weekly_every == 7 * 86400
    assert settings.integrity_check_every == 900
    assert settings.backup_git_branch == "db-backups"
    assert settings.backup_offsite_every == 86400
    assert settings.backup_git_keep == 7
    assert settings.render is False


def test_reads_every_kind_of_value(monkeypatch, tmp_path):
    monkeypatch.setenv("ADMIN_IDS", " 12, 34 ,")
    monkeypatch.setenv("PORT", "8080")
    monkeypatch.setenv("INTEGRITY_CHECK_EVERY", "5m")
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "d"))
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123:abc")
    monkeypatch.setenv("RENDER", "true")
    settings = load_settings()
    assert settings.admin_ids == (12, 34)
    assert settings.port == 8080
    assert settings.integrity_check_every == 300
    assert settings.database == tmp_path / "d" / "erixcast.db"
    assert settings.telegram_bot_token.get_secret_value() == "123:abc"
    assert settings.render is True


def test_reads_the_env_file_and_the_environment_wins(monkeypatch, tmp_path):
    env_file = tmp_path / "custom.env"
    env_file.write_text("PORT=9000\nADMIN_IDS=5\n")
    monkeypatch.setenv("ENV_FILE", str(env_file))
    monkeypatch.setenv("ADMIN_IDS", "6")
    settings = load_settings()
    assert settings.port == 9000
    assert settings.admin_ids == (6,)


def test_empty_secret_means_unset(monkeypatch):
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "  ")
    assert load_settings().telegram_bot_token is None


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("PORT", "abc"),
        ("PORT", "70000"),
        ("BACKUP_DAILY_EVERY", "tomorrow"),
        ("INTEGRITY_CHECK_EVERY", "0"),
        ("ADMIN_IDS", "12,bob"),
        ("BACKUP_GIT_KEEP", "0"),
        ("TELEGRAM_API_URL", "api.telegram.org"),
        ("DISK_WARN_PERCENT", "150"),
        ("LOG_LEVEL", "LOUD"),
    ],
)
def test_a_bad_value_names_its_variable(monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert variable in str(caught.value)


def test_a_secret_is_never_echoed_in_the_error(monkeypatch):
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "999:very-secret-token")
    monkeypatch.setenv("PORT", "x")
    monkeypatch.setenv("BACKUP_GIT_KEEP", "bad")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert "very-secret-token" not in str(caught.value)


def test_env_example_lists_every_setting():
    example = (Path(__file__).resolve().parents[2] / ".env.example").read_text()
    documented = {
        line.split("=", 1)[0].lstrip("# ").strip() for line in example.splitlines() if "=" in line
    }
    missing = set(SETTING_VARS) - documented - {"RENDER"} - INTERNAL_VARS
    assert not missing, f".env.example does not list {sorted(missing)}"
