"""The one place that reads settings: the environment, then a ``.env`` file.

``ENV_FILE`` names another file to read instead of ``./.env``; a file named so must exist
(``/dev/null`` for none). An empty value (``DATABASE_PATH=``) means unset. Every bad value is one
line naming its variable, never a traceback. Validated here with pydantic, for the processes
that run (the watchdog, the bot, a command doing the work itself); where values come from, and
the data's place (all a command asking the running watchdog needs), are ``conf.env``'s, which
imports no pydantic.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from conf.database_url import DatabaseURL, parse_database_url
from conf.durations import parse_duration
from conf.env import (
    DEFAULT_DATA_DIR,
    SettingsError,
    data_paths,
    env_file_path,
    exit_bad_setting,
)

Duration = Annotated[float, Field(gt=0)]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        case_sensitive=False,
        env_ignore_empty=True,
        extra="ignore",
        validate_default=True,
    )

    telegram_bot_token: SecretStr | None = None
    telegram_api_url: str = "https://api.telegram.org/bot"
    admin_ids: Annotated[tuple[int, ...], NoDecode] = ()

    data_dir: Path = DEFAULT_DATA_DIR
    database_path: Path | None = None
    # A PostgreSQL server instead of the SQLite file (conf/database_url.py checks it).
    database_url: SecretStr | None = None

    port: int = Field(10000, ge=1, le=65535)
    host: str = "0.0.0.0"
    stats_token: SecretStr | None = None

    backup_hourly_every: Duration = 3600
    backup_daily_every: Duration = 86400
    backup_weekly_every: Duration = 7 * 86400
    integrity_check_every: Duration = 15 * 60
    backup_keep_hourly: int = Field(24, ge=1)
    backup_keep_daily: int = Field(7, ge=1)
    backup_keep_weekly: int = Field(4, ge=1)
    backup_keep_deploy: int = Field(5, ge=1)
    backup_keep_restart: int = Field(5, ge=1)
    backup_keep_shutdown: int = Field(3, ge=1)
    backup_keep_manual: int = Field(10, ge=1)
    backup_min_free_mb: float = Field(64, ge=0)

    backup_git_url: str | None = None
    backup_git_token: SecretStr | None = None
    backup_git_branch: str = "db-backups"
    backup_offsite_every: Duration = 86400
    backup_git_keep: int = Field(7, ge=1)
    backup_age_key: SecretStr | None = None
    backup_git_allow_plaintext: bool = False
    backup_git_timeout: Duration = 120

    # The update journal (conf/journal.py): how often its new lines go offsite, and the size
    # past which its oldest closed segments are removed even though no backup covers them.
    journal_offsite_every: Duration = 300
    journal_max_mb: float = Field(512, gt=0)

    disk_warn_percent: float = Field(80, gt=0, le=100)
    disk_critical_percent: float = Field(95, gt=0, le=100)
    bot_heartbeat_timeout: Duration = 60
    bot_stop_timeout: Duration = 10
    bot_restart_backoff_max: Duration = 60
    bot_poll_timeout: int = Field(10, ge=0, le=50)
    # Per-user limits (bot/limits.py): a token bucket of RATE_LIMIT_BURST updates refilled at
    # RATE_LIMIT_PER_MINUTE, and USER_QUOTA_MB of stored messages and notes.
    rate_limit_per_minute: float = Field(60, ge=1, le=6000)
    rate_limit_burst: int = Field(30, ge=1, le=1000)
    user_quota_mb: float = Field(10, ge=0.01, le=100_000)
    shutdown_budget: Duration = 20
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"
    heartbeat_url: SecretStr | None = None

    # Webhook mode (bot/webhook.py): with TELEGRAM_WEBHOOK_URL set, Telegram POSTs updates to
    # it and the bot serves them on WEBHOOK_HOST:WEBHOOK_PORT (PORT is the watchdog's), checking
    # TELEGRAM_WEBHOOK_SECRET on every request; unset, the bot polls.
    telegram_webhook_url: str | None = None
    telegram_webhook_secret: SecretStr | None = None
    webhook_host: str = "0.0.0.0"
    webhook_port: int = Field(8443, ge=1, le=65535)

    @field_validator("telegram_webhook_url", "telegram_webhook_secret", mode="before")
    @classmethod
    def _webhook_empty_is_unset(cls, value: Any) -> Any:
        if isinstance(value, str):
            return value.strip() or None
        return value

    @field_validator("telegram_webhook_url")
    @classmethod
    def _webhook_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError("must be an https:// URL that Telegram can reach")
        if parts.scheme == "http" and not is_loopback_url(value):
            raise ValueError("Telegram only posts to https:// (plain http:// is for this machine)")
        if parts.username or parts.password or parts.fragment:
            raise ValueError("must not hold credentials or a #fragment")
        if (parts.path or "/") == WEBHOOK_HEALTH_PATH:
            raise ValueError(f"its path must not be {WEBHOOK_HEALTH_PATH} (the health check's)")
        return value

    @field_validator("telegram_webhook_secret")
    @classmethod
    def _webhook_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not WEBHOOK_SECRET_PATTERN.fullmatch(value.get_secret_value()):
            raise ValueError("must be 1-256 characters of A-Z, a-z, 0-9, _ and - (Telegram's rule)")
        return value

    @model_validator(mode="after")
    def _webhook_complete(self) -> Settings:
        if self.telegram_webhook_url is None:
            return self
        if self.telegram_webhook_secret is None:
            raise ValueError(
                "TELEGRAM_WEBHOOK_SECRET must be set with TELEGRAM_WEBHOOK_URL (anyone could "
                "post updates otherwise)"
            )
        if self.webhook_port == self.port:
            raise ValueError(f"WEBHOOK_PORT: {self.webhook_port} is PORT, the watchdog's")
        return self

    @property
    def webhook_path(self) -> str:
        assert self.telegram_webhook_url is not None
        return urlsplit(self.telegram_webhook_url).path or "/"

    render: bool = False

    # Set by the watchdog for its child only: where the bot reaches the watchdog's loopback admin
    # API, and the per-run secret it must present.
    watchdog_url: str | None = Field(None, validation_alias="ERIXCAST_WATCHDOG_URL")
    watchdog_secret: SecretStr | None = Field(None, validation_alias="ERIXCAST_WATCHDOG_SECRET")

    @field_validator(
        "backup_hourly_every",
        "backup_daily_every",
        "backup_weekly_every",
        "integrity_check_every",
        "backup_offsite_every",
        "bot_heartbeat_timeout",
        "bot_stop_timeout",
        "bot_restart_backoff_max",
        "shutdown_budget",
        "backup_git_timeout",
        "journal_offsite_every",
        mode="before",
    )
    @classmethod
    def _duration(cls, value: Any) -> float:
        return parse_duration(value)

    @field_validator("admin_ids", mode="before")
    @classmethod
    def _ids(cls, value: Any) -> Any:
        if isinstance(value, str):
            parts = [part.strip() for part in value.split(",") if part.strip()]
            for part in parts:
                if not part.lstrip("-").isdigit():
                    raise ValueError(f"{part!r} is not a Telegram user id (a whole number)")
            return tuple(int(part) for part in parts)
        return value

    @field_validator("render", mode="before")
    @classmethod
    def _render(cls, value: Any) -> Any:
        # Render sets RENDER=true; any non-empty value other than a clear "no" means we are there.
        if isinstance(value, str):
            return value.strip().lower() not in ("", "0", "false", "no")
        return value

    @field_validator(
        "telegram_bot_token",
        "stats_token",
        "backup_git_token",
        "backup_age_key",
        "backup_git_url",
        "heartbeat_url",
        "database_url",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            return None
        return value.strip() if isinstance(value, str) else value

    @field_validator("telegram_api_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        if value.startswith("http://") and not is_loopback_url(value):
            raise ValueError(
                "plain http:// is only for a Bot API on this machine (127.0.0.1, ::1, "
                "localhost): the token is part of every request URL; use https://"
            )
        return value

    @field_validator("heartbeat_url")
    @classmethod
    def _heartbeat_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith(("http://", "https://")):
            raise ValueError("must start with https:// (or http://)")
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parse_database_url(value.get_secret_value())
        return value

    @field_validator("log_format", mode="before")
    @classmethod
    def _log_format(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ValueError("use DEBUG, INFO, WARNING, ERROR or CRITICAL")
        return level

    @model_validator(mode="after")
    def _resolve_paths(self) -> Settings:
        self.data_dir, self.database_path = data_paths(self.data_dir, self.database_path)
        if self.disk_warn_percent > self.disk_critical_percent:
            raise ValueError("DISK_WARN_PERCENT must not exceed DISK_CRITICAL_PERCENT")
        return self

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

    _runtime_secrets: list[str] = PrivateAttr(default_factory=list)

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


_SECRET_FIELDS = {
    "telegram_bot_token",
    "telegram_webhook_secret",
    "stats_token",
    "backup_git_token",
    "backup_age_key",
    "watchdog_secret",
    "heartbeat_url",
    "database_url",
}


def env_name(field: str) -> str:
    """The environment variable behind a settings field."""
    info = Settings.model_fields.get(field)
    alias = info.validation_alias if info is not None else None
    return (alias if isinstance(alias, str) else field).upper()


def describe_error(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        field = str(item["loc"][0]) if item["loc"] else ""
        reason = str(item["msg"]).removeprefix("Value error, ")
        if field:
            shown = "" if field in _SECRET_FIELDS else f" (got {item.get('input')!r})"
            lines.append(f"{env_name(field)}: {reason}{shown}")
        else:
            lines.append(reason)
    return "; ".join(lines)


def is_loopback_url(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_settings() -> Settings:
    """Settings from the process environment and the env file, or SettingsError."""
    try:
        return Settings(_env_file=env_file_path())  # type: ignore[call-arg]
    except ValidationError as error:
        raise SettingsError(describe_error(error)) from None


def load_settings_or_exit(program: str) -> Settings:
    """Settings, or one line on stderr naming the bad variable and exit code 2 (no traceback)."""
    try:
        return load_settings()
    except SettingsError as error:
        exit_bad_setting(program, error)
