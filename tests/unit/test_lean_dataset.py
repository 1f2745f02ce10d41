"""The bot imports dataset without alembic (10 MB, a few hundred ms at every start), and
dataset still does everything that needs alembic, with the real one, when asked."""

from __future__ import annotations

import subprocess
import sys

from tests.helpers import REPO

PROBE = """
import sys
import bot.app, bot.replay_command  # all the bot imports before it polls
assert not [m for m in sys.modules if m.split(".")[0] in ("alembic", "mako", "pygments")], (
    sorted(m for m in sys.modules if m.startswith("alembic"))
)
from bot.storage.lean_dataset import dataset
db = dataset.connect("sqlite://")
table = db.create_table("t")
table.insert({"a": 1})
table.create_column("b", db.types.text)  # an existing table: dataset asks alembic's Operations
assert table.columns == ["id", "a", "b"], table.columns
assert type(db.op).__module__.startswith("alembic."), type(db.op)
import alembic.config  # a later import of alembic is the real one
print("ok")
"""


def test_the_bot_starts_without_alembic_and_dataset_still_has_it_when_asked():
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
