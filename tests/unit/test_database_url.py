"""DATABASE_URL: only PostgreSQL URLs, one SQLAlchemy form, and the password nowhere in sight."""

from __future__ import annotations

from pathlib import Path

import pytest

from conf.database_url import parse_database_url
from conf.settings import Settings, SettingsError, load_settings

PASSWORD = "s3cr%40t-pw"  # percent-encoded "s3cr@t-pw"
URL = f"postgresql://bot:{PASSWORD}@db.example:5433/erixcast?sslmode=require"


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("ENV_FILE", "/dev/null")
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    for name in ("DATABASE_URL", "DATABASE_PATH"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_unset_means_the_sqlite_file(env: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    assert settings.database_server is None
    env.setenv("DATABASE_URL", "  ")
    assert load_settings().database_server is None


@pytest.mark.parametrize("scheme", ["postgresql", "postgres", "PostgreSQL"])
def test_a_postgresql_url_becomes_the_psycopg_form(env: pytest.MonkeyPatch, scheme: str) -> None:
    env.setenv("DATABASE_URL", URL.replace("postgresql", scheme, 1))
    server = load_settings().database_server
    assert server is not None
    assert server.sqlalchemy_url == URL.replace("postgresql", "postgresql+psycopg", 1)
    assert server.libpq_url == URL
    assert server.redacted == "postgresql://bot@db.example:5433/erixcast?sslmode=require"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (f"mysql://bot:{PASSWORD}@db/erixcast", "starting with postgresql://"),
        (f"postgresql+psycopg2://bot:{PASSWORD}@db/erixcast", "starting with postgresql://"),
        (f"sqlite:///{PASSWORD}.db", "starting with postgresql://"),
        (f"db.example/{PASSWORD}", "starting with postgresql://"),
        (f"postgresql://bot:{PASSWORD}@db:port/erixcast", "port cannot be read"),
        (f"postgresql://bot:{PASSWORD}@db:99999/erixcast", "port cannot be read"),
        (f"postgresql://bot:{PASSWORD}@/erixcast", "names no server"),
        (f"postgresql://bot:{PASSWORD}@db/eri xcast", "spaces"),
    ],
)
def test_anything_else_is_one_line_without_the_password(
    env: pytest.MonkeyPatch, value: str, reason: str
) -> None:
    env.setenv("DATABASE_URL", value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert message.startswith("DATABASE_URL: ")
    assert reason in message
    assert PASSWORD not in message and "s3cr@t" not in message
    assert "\n" not in message


def test_a_socket_folder_in_the_query_is_a_server() -> None:
    server = parse_database_url("postgresql:///erixcast?host=/run/postgresql")
    assert server.redacted == "postgresql:///erixcast?host=/run/postgresql"


def test_the_password_is_never_shown_and_always_redacted(env: pytest.MonkeyPatch) -> None:
    env.setenv("DATABASE_URL", URL + "&password=other-secret")
    settings = load_settings()
    server = settings.database_server
    assert server is not None
    for shown in (str(server), repr(server), repr(settings), str(settings), server.redacted):
        assert PASSWORD not in shown and "s3cr@t-pw" not in shown
        assert "other-secret" not in shown
    assert {PASSWORD, "s3cr@t-pw", "other-secret"} <= set(settings.secrets())


def test_the_bot_is_given_it_by_the_watchdog(env: pytest.MonkeyPatch) -> None:
    from watchdog.runtime.child import bot_environment

    env.setenv("DATABASE_URL", URL)
    assert bot_environment(Settings(), None)["DATABASE_URL"] == URL
