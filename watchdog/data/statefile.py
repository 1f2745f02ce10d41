"""The watchdog's own small state file (``DATA_DIR/watchdog-state.json``): what must outlive a run,
such as the last app version that ran on this data. Written atomically; a damaged file is set aside
(never deleted) and treated as empty."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from watchdog.data.fs import atomic_write_json

log = logging.getLogger(__name__)


def load_state(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        aside = path.with_name(path.name + ".damaged")
        log.error("state file %s unreadable (%s); kept as %s, starting empty", path, error, aside)
        os.replace(path, aside)
        return {}
    return data if isinstance(data, dict) else {}


def save_state(path: Path, data: dict[str, Any]) -> None:
    atomic_write_json(path, data)


def update_state(path: Path, **changes: Any) -> dict[str, Any]:
    data = load_state(path)
    data.update(changes)
    save_state(path, data)
    return data
