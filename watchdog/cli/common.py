"""What every one-shot command shares: settings, quiet logging, the backup keeper. Light on
purpose: a command that asks the running watchdog imports nothing of the data layer (the
commands import it inside the functions that do the work here)."""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from conf.layout import DataLayout
from conf.logging import setup_logging
from conf.settings import Settings, load_settings_or_exit
from conf.units import MIB
from watchdog.web.wording import span

if TYPE_CHECKING:
    from watchdog.data.backups import BackupKeeper


def prepare(program: str = "watchdog") -> tuple[Settings, DataLayout]:
    settings = load_settings_or_exit(program)
    layout = DataLayout.from_settings(settings)
    layout.ensure()
    # One-shot commands print their results; log lines go to the watchdog's log file only, and
    # warnings to stdout, so an operator's terminal shows answers, not chatter.
    setup_logging("cli", "WARNING", settings.secrets(), layout.logs, settings.log_format)
    return settings, layout


def keeper_for(settings: Settings, layout: DataLayout) -> BackupKeeper:
    from watchdog.data.backups import BackupKeeper
    from watchdog.version import app_version

    return BackupKeeper(
        layout,
        keep=settings.retention(),
        min_free_bytes=int(settings.backup_min_free_mb * MIB),
        app_version=app_version(),
    )


def age(created_at: float, now: float | None = None) -> str:
    """A short human age: ``45s``, ``12m``, ``3h05m``, ``2d04h``."""
    return span((time.time() if now is None else now) - created_at)


def iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


def fail(command: str, message: str, code: int = 1) -> int:
    print(f"watchdog {command}: {message}", file=sys.stderr)
    return code


def megabytes(size_bytes: int) -> str:
    return f"{size_bytes / MIB:.2f}"
