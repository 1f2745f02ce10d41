"""/metrics's text is ``generate_latest``'s, byte for byte, with each family's text kept while
its samples hold still (``web.metrics.Exposition``): what changed shows at the next scrape."""

from __future__ import annotations

from prometheus_client import generate_latest

from tests.fakes.clock import FakeClock
from tests.unit.test_web_exposure import busy_state, fake_watchdog
from watchdog.runtime.pauses import LoopLag
from watchdog.web.metrics import Exposition, build_registry


def still_watchdog():  # type: ignore[no-untyped-def]
    """The fake watchdog on a clock that does not move: two scrapes see the same moment."""
    service = fake_watchdog(None)
    service.clock = FakeClock()  # type: ignore[assignment]
    service.state = busy_state(service.clock.time())
    return service


def test_the_kept_text_is_generate_latests_and_follows_every_change():
    service = still_watchdog()
    lag = LoopLag()
    registry = build_registry(service, lag=lag)
    exposition = Exposition(registry)
    first = exposition.latest()
    assert first == generate_latest(registry)
    assert exposition.latest() == first  # nothing changed: the same text, from what was kept

    service.state.backups.count += 1
    service.state.database.tables["users"] = 99_999
    lag.note(0.5)
    changed = exposition.latest()
    assert changed == generate_latest(registry) and changed != first
    service.clock.advance(30)  # the ages move
    assert exposition.latest() == generate_latest(registry) != changed
    text = changed.decode()
    assert f"erixcast_backups {float(service.state.backups.count)}" in text
    assert 'erixcast_database_rows{table="users"} 99999.0' in text
    assert "erixcast_watchdog_loop_stalls_total 1.0" in text

    service.state.backups.count -= 1
    service.state.database.tables["users"] = 1234
    back = exposition.latest()  # as it was: the text kept for it serves again, still right
    assert back == generate_latest(registry) != changed


def test_what_is_kept_stays_bounded_one_text_a_family():
    service = still_watchdog()
    registry = build_registry(service)
    exposition = Exposition(registry)
    for count in range(100):
        service.state.backups.count = count
        assert exposition.latest() == generate_latest(registry)
    assert len(exposition._texts) == len(list(registry.collect()))
