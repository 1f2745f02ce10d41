"""Logging for both processes: stdout (supervisord passes it to the platform) and a bounded file."""

from __future__ import annotations

import json
import logging
import logging.handlers
import sys
from collections.abc import Iterable
from pathlib import Path

REDACTED = "[REDACTED]"
_FORMAT = "%(asctime)s %(levelname)-7s {component} %(name)s: %(message)s"
_NOISY = ("httpx", "httpcore", "aiohttp.access", "apscheduler", "git.cmd", "alembic")


class RedactingFormatter(logging.Formatter):
    """Replaces every secret in the finished line, tracebacks included."""

    def __init__(self, fmt: str, secrets: Iterable[str]) -> None:
        super().__init__(fmt)
        self._secrets: list[str] = []
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        # Longest first, so a secret that contains another is replaced whole.
        self._secrets = sorted({*self._secrets, *(s for s in secrets if s)}, key=len, reverse=True)

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record), self._secrets)


class JsonLinesFormatter(RedactingFormatter):
    """``LOG_FORMAT=json``: one JSON object per line (``time``, ``level``, ``component``,
    ``logger``, ``message``, and ``traceback`` when there is one), secrets redacted in each
    field before encoding (an escaped secret would slip past a replace on the finished line)."""

    def __init__(self, component: str, secrets: Iterable[str]) -> None:
        super().__init__("%(message)s", secrets)
        self.component = component

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, str] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}",
            "level": record.levelname,
            "component": self.component,
            "logger": record.name,
            "message": redact(record.getMessage(), self._secrets),
        }
        if record.exc_info:
            line["traceback"] = redact(self.formatException(record.exc_info), self._secrets)
        elif record.exc_text:
            line["traceback"] = redact(record.exc_text, self._secrets)
        return redact(json.dumps(line, ensure_ascii=False), self._secrets)


def add_secret(value: str) -> None:
    """Redact a secret made at run time (the admin API's) from every configured handler."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler.formatter, RedactingFormatter):
            handler.formatter.add([value])


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text


def setup_logging(
    component: str,
    level: str,
    secrets: Iterable[str],
    log_dir: Path | None = None,
    log_format: str = "text",
) -> None:
    formatter = (
        JsonLinesFormatter(component, list(secrets))
        if log_format == "json"
        else RedactingFormatter(_FORMAT.format(component=component), list(secrets))
    )
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stdout)]
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        handlers.append(
            logging.handlers.RotatingFileHandler(
                log_dir / f"{component}.log", maxBytes=5_000_000, backupCount=3, encoding="utf-8"
            )
        )
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        handler.setFormatter(formatter)
        root.addHandler(handler)
    root.setLevel(level)
    for name in _NOISY:
        logging.getLogger(name).setLevel(logging.WARNING)
