"""What every one-shot command shares: where the data is, settings, quiet logging, the backup
keeper. Light on purpose: a command that asks the running watchdog needs only :func:`locate`
(``conf.env``, not every setting) and imports nothing of the data layer; the full settings
(:func:`prepare`) and the data layer are imported by the commands that do the work here."""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from conf.env import read_places_or_exit
from conf.layout import DataLayout
from conf.units import MIB
from watchdog.web.wording import span

if TYPE_CHECKING:
    from conf.settings import Settings
    from watchdog.data.backups import BackupKeeper


def locate(program: str = "watchdog") -> DataLayout:
    """The data's layout from DATA_DIR and DATABASE_PATH alone (folders made): enough to find
    the running watchdog. A command doing the work itself calls :func:`prepare` then."""
    places = read_places_or_exit(program)
    layout = DataLayout(root=places.data_dir, database=places.database)
    layout.ensure()
    return layout


def prepare(program: str = "watchdog") -> tuple[Settings, DataLayout]:
    """Every setting validated, the layout, and logging to the log file."""
    from conf.logging import setup_logging
    from conf.settings import load_settings_or_exit

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
        snapshot_here=True,  # no stack runs: this process has nothing else to do meanwhile
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
