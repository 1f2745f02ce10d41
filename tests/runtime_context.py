"""One way for a test to build the watchdog's runtime context: settings read from the
environment it sets (no developer's .env), the data layout made, a fake clock, and the fakes a
test wants at the edges (an alerter, a pinger, a database kind)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from conf.layout import DataLayout
from conf.settings import load_settings
from tests.fakes.clock import FakeClock
from watchdog.data.remembered import RememberedStore
from watchdog.rules.state import WatchdogState
from watchdog.runtime.context import RuntimeContext
from watchdog.runtime.events import Events


def runtime_context(
    monkeypatch: pytest.MonkeyPatch,
    data_dir: Path,
    *,
    env: dict[str, str] | None = None,
    clock: FakeClock | None = None,
    alerter: Any = None,
    pinger: Any = None,
    kind: Any = None,
    remembered: RememberedStore | None = None,
    ensure: bool = True,
) -> RuntimeContext:
    monkeypatch.setenv("ENV_FILE", os.devnull)
    monkeypatch.setenv("DATA_DIR", str(data_dir))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    for name, value in (env or {}).items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    layout = DataLayout.from_settings(settings)
    if ensure:
        layout.ensure()
    clock = clock or FakeClock()
    state = WatchdogState(started_at=clock.time())
    return RuntimeContext(
        settings=settings,
        layout=layout,
        clock=clock,
        state=state,
        remembered=remembered or RememberedStore(layout.state_file),
        events=Events(state, clock.time, alerter, pinger),
        kind=kind,
    )
