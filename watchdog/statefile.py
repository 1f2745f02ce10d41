"""The watchdog's own small state file (``DATA_DIR/watchdog-state.json``): what must outlive a run,
such as the last app version that ran on this data. Written atomically; a damaged file is set aside
(never deleted) and treated as empty."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

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
    temporary = path.with_name(f".{path.name}.tmp")
    with temporary.open("w") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def update_state(path: Path, **changes: Any) -> dict[str, Any]:
    data = load_state(path)
    data.update(changes)
    save_state(path, data)
    return data
