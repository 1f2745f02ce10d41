"""Which code is running: the deployed commit on Render, else the package version."""

from __future__ import annotations

import os

APP_VERSION = "0.1.0"


def app_version() -> str:
    commit = os.environ.get("RENDER_GIT_COMMIT", "").strip()
    return commit[:12] if commit else APP_VERSION
