"""The code a "before" row runs: an earlier revision of this repository, unpacked with ``git
archive`` into a scratch folder (its own ``bot``/``watchdog`` packages, this checkout's venv)."""

from __future__ import annotations

import subprocess
import tarfile
from pathlib import Path

from tests.helpers import REPO

BEFORE_ISSUE_13 = "5d7e2af"
"""main before the bot was made fair and bounded (issue 13): updates one at a time, replies
sent and retried inside the handler, whole histories loaded for /notes and /export."""


def code_at(revision: str, into: Path) -> Path:
    """The tree of ``revision``, unpacked below ``into``."""
    archive = into / f"{revision}.tar"
    with archive.open("wb") as out:
        subprocess.run(["git", "archive", revision], cwd=REPO, stdout=out, check=True)
    tree = into / revision
    with tarfile.open(archive) as tar:
        tar.extractall(tree, filter="data")
    archive.unlink()
    return tree
