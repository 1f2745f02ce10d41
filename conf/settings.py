"""The one place that reads settings: the environment, then a ``.env`` file.

``ENV_FILE`` names another file to read instead of ``./.env``; a file named so must exist
(``/dev/null`` for none). An empty value (``DATABASE_PATH=``) means unset. Every bad value is one
line naming its variable, never a traceback. Each field is declared once below, with its type,
default and parser (``conf.values``); where values come from, and the data's place (all a
command asking the running watchdog needs), are ``conf.env``'s.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from conf import values
from conf.database_url import DatabaseURL, parse_database_url
from conf.env import (
    DEFAULT_DATA_DIR,
    SettingsError,
    data_paths,
    env_file_path,
    exit_bad_setting,
    raw_values,
)
from conf.secret import Secret
from conf.values import is_loopback_url

WEBHOOK_SETTINGS = (
    "telegram_webhook_url",
    "telegram_webhook_secret",
    "webhook_host",
    "webhook_port",
)
"""Webhook mode's settings, handed to the bot by the watchdog like ``BOT_LIMIT_SETTINGS``."""
WEBHOOK_HEALTH_PATH = "/health"
WEBHOOK_SECRET_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,256}")

BOT_LIMIT_SETTINGS = ("rate_limit_per_minute", "rate_limit_burst", "user_quota_mb")
"""Settings the bot reads besides those the watchdog always hands its child
(``watchdog.runtime.child.BOT_SETTINGS`` must include them)."""

_READ_ENV_FILE: Any = object()
"""``Settings()``'s default: ``ENV_FILE``, else ``./.env`` (``_env_file=None``: no file)."""


def setting(parse: values.Parse, default: Any = None, *, env: str | None = None) -> Any:
    """A field: its parser (applied to the default too), and its variable when that is not the
    field's name in upper case."""
    return dataclasses.field(default=default, metadata={"parse": parse, "env": env})


def _api_url(value: Any) -> str:
    url = values.text(value)
    if not url.startswith(("http://", "https://")):
        raise ValueError("must start with http:// or https://")
    if url.startswith("http://") and not is_loopback_url(url):
        raise ValueError(
            "plain http:// is only for a Bot API on this machine (127.0.0.1, ::1, "
            "localhost): the token is part of every request URL; use https://"
        )
    return url


def _webhook_url(value: Any) -> str | None:
    url = values.stripped_or_unset(value)
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError("must be an https:// URL that Telegram can reach")
    if parts.scheme == "http" and not is_loopback_url(url):
        raise ValueError("Telegram only posts to https:// (plain http:// is for this machine)")
    if parts.username or parts.password or parts.fragment:
        raise ValueError("must not hold credentials or a #fragment")
    if (parts.path or "/") == WEBHOOK_HEALTH_PATH:
        raise ValueError(f"its path must not be {WEBHOOK_HEALTH_PATH} (the health check's)")
    return url


def _webhook_secret(value: Any) -> Secret | None:
    found = values.secret(value)
    if found is not None and not WEBHOOK_SECRET_PATTERN.fullmatch(found.get_secret_value()):
        raise ValueError("must be 1-256 characters of A-Z, a-z, 0-9, _ and - (Telegram's rule)")
    return found


def _heartbeat_url(value: Any) -> Secret | None:
    found = values.secret(value)
    if found is not None and not found.get_secret_value().startswith(("http://", "https://")):
        raise ValueError("must start with https:// (or http://)")
    return found


def _database_url(value: Any) -> Secret | None:
    found = values.secret(value)
    if found is not None:
        parse_database_url(found.get_secret_value())
    return found


_PORT = values.integer(1, 65535)
_KEEP = values.integer(1)
_DURATION = values.duration
_PERCENT = values.number(0, 100, inclusive_low=False)
_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@dataclass(init=False)
class Settings:
    """Every setting, validated. ``Settings(**overrides)`` reads the environment and the env
    file as :func:`load_settings` does, with ``overrides`` (field names) winning."""

    telegram_bot_token: Secret | None = setting(values.secret)
    telegram_api_url: str = setting(_api_url, "https://api.telegram.org/bot")
    admin_ids: tuple[int, ...] = setting(values.user_ids, ())

    data_dir: Path = setting(values.path, DEFAULT_DATA_DIR)
    database_path: Path | None = setting(values.optional_path)
    # A PostgreSQL server instead of the SQLite file (conf/database_url.py checks it).
    database_url: Secret | None = setting(_database_url)

    port: int = setting(_PORT, 10000)
    host: str = setting(values.text, "0.0.0.0")
    stats_token: Secret | None = setting(values.secret)

    backup_hourly_every: float = setting(_DURATION, 3600)
    backup_daily_every: float = setting(_DURATION, 86400)
    backup_weekly_every: float = setting(_DURATION, 7 * 86400)
    integrity_check_every: float = setting(_DURATION, 15 * 60)
    backup_keep_hourly: int = setting(_KEEP, 24)
    backup_keep_daily: int = setting(_KEEP, 7)
    backup_keep_weekly: int = setting(_KEEP, 4)
    backup_keep_deploy: int = setting(_KEEP, 5)
    backup_keep_restart: int = setting(_KEEP, 5)
    backup_keep_shutdown: int = setting(_KEEP, 3)
    backup_keep_manual: int = setting(_KEEP, 10)
    backup_min_free_mb: float = setting(values.number(0), 64)

    backup_git_url: str | None = setting(values.stripped_or_unset)
    backup_git_token: Secret | None = setting(values.secret)
    backup_git_branch: str = setting(values.text, "db-backups")
    backup_offsite_every: float = setting(_DURATION, 86400)
    backup_git_keep: int = setting(_KEEP, 7)
    backup_age_key: Secret | None = setting(values.secret)
    backup_git_allow_plaintext: bool = setting(values.boolean, False)
    backup_git_timeout: float = setting(_DURATION, 120)

    # The update journal (conf/journal.py): how often its new lines go offsite, and the size
    # past which its oldest closed segments are removed even though no backup covers them.
    journal_offsite_every: float = setting(_DURATION, 300)
    journal_max_mb: float = setting(values.number(0, inclusive_low=False), 512)

    disk_warn_percent: float = setting(_PERCENT, 80)
    disk_critical_percent: float = setting(_PERCENT, 95)
    bot_heartbeat_timeout: float = setting(_DURATION, 60)
    bot_stop_timeout: float = setting(_DURATION, 10)
    bot_restart_backoff_max: float = setting(_DURATION, 60)
    bot_poll_timeout: int = setting(values.integer(0, 50), 10)
    # Per-user limits (bot/limits.py): a token bucket of RATE_LIMIT_BURST updates refilled at
    # RATE_LIMIT_PER_MINUTE, and USER_QUOTA_MB of stored messages and notes.
    rate_limit_per_minute: float = setting(values.number(1, 6000), 60)
    rate_limit_burst: int = setting(values.integer(1, 1000), 30)
    user_quota_mb: float = setting(values.number(0.01, 100_000), 10)
    shutdown_budget: float = setting(_DURATION, 20)
    log_level: str = setting(
        values.choice(*_LEVELS, fold=lambda text: text.strip().upper()), "INFO"
    )
    log_format: str = setting(
        values.choice("text", "json", fold=lambda t: t.strip().lower()), "text"
    )
    heartbeat_url: Secret | None = setting(_heartbeat_url)

    # Webhook mode (bot/webhook.py): with TELEGRAM_WEBHOOK_URL set, Telegram POSTs updates to
    # it and the bot serves them on WEBHOOK_HOST:WEBHOOK_PORT (PORT is the watchdog's), checking
    # TELEGRAM_WEBHOOK_SECRET on every request; unset, the bot polls.
    telegram_webhook_url: str | None = setting(_webhook_url)
    telegram_webhook_secret: Secret | None = setting(_webhook_secret)
    webhook_host: str = setting(values.text, "0.0.0.0")
    webhook_port: int = setting(_PORT, 8443)

    render: bool = setting(values.on_render, False)

    # Set by the watchdog for its child only: where the bot reaches the watchdog's loopback admin
    # API, and the per-run secret it must present.
    watchdog_url: str | None = setting(values.optional_text, env="ERIXCAST_WATCHDOG_URL")
    watchdog_secret: Secret | None = setting(values.secret, env="ERIXCAST_WATCHDOG_SECRET")

    def __init__(self, _env_file: Any = _READ_ENV_FILE, **overrides: Any) -> None:
        unknown = set(overrides) - set(FIELDS)
        if unknown:
            raise TypeError(f"no such setting: {', '.join(sorted(unknown))}")
        env_file = env_file_path() if _env_file is _READ_ENV_FILE else _env_file
        raw = raw_values(*(env_name(name) for name in FIELDS), env_file=env_file)
        problems = []
        for name, field in FIELDS.items():
            variable = env_name(name)
            given = name in overrides or variable in raw
            value = overrides[name] if name in overrides else raw.get(variable, field.default)
            try:
                setattr(self, name, field.metadata["parse"](value))
            except ValueError as error:
                shown = f" (got {value!r})" if given and name not in SECRET_FIELDS else ""
                problems.append(f"{variable}: {error}{shown}")
        if problems:
            raise SettingsError("; ".join(problems))
        self._runtime_secrets: list[str] = []
        try:
            self._check_together()
        except ValueError as error:
            raise SettingsError(str(error)) from None

    def _check_together(self) -> None:
        self.data_dir, self.database_path = data_paths(self.data_dir, self.database_path)
        if self.disk_warn_percent > self.disk_critical_percent:
            raise ValueError("DISK_WARN_PERCENT must not exceed DISK_CRITICAL_PERCENT")
        if self.telegram_webhook_url is None:
            return
        if self.telegram_webhook_secret is None:
            raise ValueError(
                "TELEGRAM_WEBHOOK_SECRET must be set with TELEGRAM_WEBHOOK_URL (anyone could "
                "post updates otherwise)"
            )
        if self.webhook_port == self.port:
            raise ValueError(f"WEBHOOK_PORT: {self.webhook_port} is PORT, the watchdog's")

    @property
    def webhook_path(self) -> str:
        assert self.telegram_webhook_url is not None
        return urlsplit(self.telegram_webhook_url).path or "/"

    def retention(self) -> dict[str, int]:
        """Backups kept per tier (the newest of each is kept whatever the count)."""
        return {
            "hourly": self.backup_keep_hourly,
            "daily": self.backup_keep_daily,
            "weekly": self.backup_keep_weekly,
            "deploy": self.backup_keep_deploy,
            "restart": self.backup_keep_restart,
            "shutdown": self.backup_keep_shutdown,
            "manual": self.backup_keep_manual,
        }

    def intervals(self) -> dict[str, float]:
        """The scheduled tiers and how often each is due."""
        return {
            "hourly": self.backup_hourly_every,
            "daily": self.backup_daily_every,
            "weekly": self.backup_weekly_every,
        }

    @property
    def database(self) -> Path:
        assert self.database_path is not None
        return self.database_path

    @property
    def database_server(self) -> DatabaseURL | None:
        """The PostgreSQL server (``DATABASE_URL``), or None: the SQLite file at
        :attr:`database`."""
        if self.database_url is None:
            return None
        return parse_database_url(self.database_url.get_secret_value())

    def add_runtime_secret(self, value: str) -> None:
        """A secret made at run time (the admin API's), redacted like the configured ones."""
        self._runtime_secrets.append(value)

    def secrets(self) -> list[str]:
        """Every secret value in force, for redaction from logs and HTTP answers."""
        found = [
            secret.get_secret_value()
            for secret in (
                self.telegram_bot_token,
                self.telegram_webhook_secret,
                self.stats_token,
                self.backup_git_token,
                self.backup_age_key,
                self.watchdog_secret,
                self.heartbeat_url,
            )
            if secret is not None
        ]
        server = self.database_server
        found += server.secrets if server is not None else []
        return [value for value in (*found, *self._runtime_secrets) if value]


FIELDS: dict[str, dataclasses.Field[Any]] = {
    field.name: field for field in dataclasses.fields(Settings)
}
"""Every setting's field: its default and its parser (``metadata["parse"]``)."""

SECRET_FIELDS = frozenset(name for name in FIELDS if "Secret" in str(FIELDS[name].type))
"""The settings whose value is never shown, not even in an error about it."""


def env_name(field: str) -> str:
    """The environment variable behind a settings field."""
    found = FIELDS.get(field)
    alias = found.metadata["env"] if found is not None else None
    return alias or field.upper()


def load_settings() -> Settings:
    """Settings from the process environment and the env file, or SettingsError."""
    return Settings()


def load_settings_or_exit(program: str) -> Settings:
    """Settings, or one line on stderr naming the bad variable and exit code 2 (no traceback)."""
    try:
        return load_settings()
    except SettingsError as error:
        exit_bad_setting(program, error)
