"""``conf.env.read_places`` (what a command reads to find the running watchdog) finds DATA_DIR
and the database where the full settings find them, from the environment and the env file
alike, and refuses what they refuse with the same line."""

from __future__ import annotations

import os

import pytest

from conf.env import read_places
from conf.settings import SettingsError, load_settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch, tmp_path):
    for name in list(os.environ):
        if name.upper() in ("DATA_DIR", "DATABASE_PATH", "ENV_FILE"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def both() -> tuple[tuple[object, object], tuple[object, object]]:
    settings = load_settings()
    places = read_places()
    return (settings.data_dir, settings.database), (places.data_dir, places.database)


CASES = [
    ({}, ""),
    ({"DATA_DIR": "elsewhere"}, ""),
    ({"data_dir": "lower-case-name"}, ""),
    ({"DATA_DIR": "env", "DATABASE_PATH": "~/x.db"}, ""),
    ({"DATABASE_PATH": ""}, "DATABASE_PATH=from-file.db\n"),
    ({}, "# a comment\nexport DATA_DIR='quoted dir'\nDATABASE_PATH=\n"),
    ({"DATA_DIR": "env-wins"}, "DATA_DIR=file-loses\nDATABASE_PATH=db/in/file.db\n"),
    ({"DATA_DIR": ""}, "DATA_DIR=file-when-env-is-empty\n"),
]


@pytest.mark.parametrize(("env", "env_file"), CASES)
def test_the_same_places_as_the_full_settings(monkeypatch, tmp_path, env, env_file):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    if env_file:
        (tmp_path / ".env").write_text(env_file)
    full, lean = both()
    assert full == lean


def test_a_named_env_file_is_read_and_an_empty_one_is_nothing(monkeypatch, tmp_path):
    named = tmp_path / "settings.env"
    named.write_text("DATA_DIR=named\n")
    monkeypatch.setenv("ENV_FILE", str(named))
    full, lean = both()
    assert full == lean and lean[0] == tmp_path / "named"
    monkeypatch.setenv("ENV_FILE", os.devnull)
    (tmp_path / ".env").write_text("DATA_DIR=not-read\n")
    full, lean = both()
    assert full == lean and lean[0] == tmp_path / "data"


@pytest.mark.parametrize("case", ["data_dir_is_a_file", "database_is_a_folder", "no_env_file"])
def test_the_same_refusals(monkeypatch, tmp_path, case):
    if case == "data_dir_is_a_file":
        (tmp_path / "plain").write_text("")
        monkeypatch.setenv("DATA_DIR", "plain")
    elif case == "database_is_a_folder":
        (tmp_path / "folder.db").mkdir()
        monkeypatch.setenv("DATABASE_PATH", "folder.db")
    else:
        monkeypatch.setenv("ENV_FILE", str(tmp_path / "missing.env"))
    with pytest.raises(SettingsError) as full:
        load_settings()
    with pytest.raises(SettingsError) as lean:
        read_places()
    assert str(full.value) == str(lean.value) and str(lean.value)
