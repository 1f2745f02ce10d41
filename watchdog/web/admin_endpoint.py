"""Where the running watchdog's loopback admin API listens, and its per-run secret: written by
the watchdog to ``DATA_DIR/run/admin.json`` (0600), read by local commands. Kept apart from the
server (``watchdog.web.admin``) so that a command asking the watchdog loads no web framework."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from watchdog.data.fs import atomic_write_json


@dataclass(frozen=True)
class AdminEndpoint:
    url: str
    secret: str

    def save(self, path: Path) -> None:
        atomic_write_json(path, {"url": self.url, "secret": self.secret, "pid": os.getpid()})

    @classmethod
    def load(cls, path: Path) -> AdminEndpoint | None:
        """The endpoint in ``path``; None when it is missing or not what the watchdog writes
        (a loopback ``http://127.0.0.1:PORT`` and a non-empty secret): nothing else is asked."""
        try:
            data = json.loads(path.read_text())
            url, secret = str(data["url"]), str(data["secret"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if not url.startswith("http://127.0.0.1:") or not secret:
            return None
        return cls(url=url, secret=secret)
