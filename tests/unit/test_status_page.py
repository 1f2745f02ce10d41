"""The status page (GET /) served by the real aiohttp app on 127.0.0.1 against the small fake
watchdog of ``test_web_exposure`` (every error text of which carries a path or a URL): what it
shows anonymously, how it asks for STATS_TOKEN, and the charts' markup."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator

import pytest

from tests.helpers import http_get
from tests.netfakes import ThreadedLoop
from tests.unit.test_web_exposure import STATS_TOKEN, assert_no_location, serve_public
from watchdog.rules.history import BackupPoint
from watchdog.web.auth import basic_password_matches
from watchdog.web.charts import Series, nice_ceiling, time_chart
from watchdog.web.status_page import chart_window


@pytest.fixture
def loop() -> Iterator[ThreadedLoop]:
    served = ThreadedLoop()
    try:
        yield served
    finally:
        served.close()


def basic(password: str, user: str = "operator") -> dict[str, str]:
    pair = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {pair}"}


def test_without_a_token_the_page_is_anyones_and_shows_no_location(loop):
    base, service = serve_public(loop, None)
    service.state.record(time.time(), "backup", "hourly backup failed: /srv/erix cast/data full")
    service.state.history.note_backups(
        [BackupPoint(time.time() - 600, "b1", "hourly", 5_000_000, 0.8)], time.time()
    )
    status, page = http_get(f"{base}/")
    assert status == 200
    assert page.startswith("<!doctype html>")
    assert_no_location(page)
    for shown in ("Backups", "Checks", "Recent events", "hourly backup failed: &lt;path&gt;"):
        assert shown in page
    assert page.count("<svg") == 2 and "<script" not in page


def test_with_a_token_the_page_asks_the_browser_to_sign_in(loop):
    base, _ = serve_public(loop, STATS_TOKEN)
    status, page = http_get(f"{base}/")
    assert status == 401 and "STATS_TOKEN" in page and STATS_TOKEN not in page
    for wrong in (
        basic("nope"),
        basic(STATS_TOKEN)["Authorization"][:-2],
        {"Authorization": "Basic !!"},
    ):
        headers = wrong if isinstance(wrong, dict) else {"Authorization": wrong}
        assert http_get(f"{base}/", headers=headers)[0] == 401
    for right in (
        basic(STATS_TOKEN),
        basic(STATS_TOKEN, user=""),
        {"Authorization": f"Bearer {STATS_TOKEN}"},
    ):
        status, page = http_get(f"{base}/", headers=right)
        assert status == 200 and "Checks" in page
        assert_no_location(page)  # the page shows what /health shows, token or not


def test_the_page_forbids_every_outside_source(loop):
    import urllib.request

    base, _ = serve_public(loop, None)
    with urllib.request.urlopen(f"{base}/", timeout=5) as answer:
        policy = answer.headers["Content-Security-Policy"]
        assert answer.headers["Cache-Control"] == "no-store"
    assert "default-src 'none'" in policy and "script-src" not in policy


def test_basic_credentials_are_checked_whole():
    assert basic_password_matches(basic("s3cret")["Authorization"], "s3cret")
    assert not basic_password_matches(basic("s3cret")["Authorization"], "s3cre")
    assert not basic_password_matches("Basic " + base64.b64encode(b"nocolon").decode(), "nocolon")
    assert not basic_password_matches("Basic \udcff\udcfe", "x")  # bytes that are not UTF-8
    assert not basic_password_matches(None, "x") and not basic_password_matches("Bearer x", "x")


def test_charts_scale_to_a_round_maximum_and_escape_their_text():
    assert [nice_ceiling(v) for v in (0, 0.013, 3, 7.2, 10, 11)] == [1, 0.02, 5, 10, 10, 20]
    svg = time_chart("size <b>", [Series("a&b", [(0.0, 1.0), (50.0, 3.0)], dots=True)], 0, 100, str)
    assert "<b>" not in svg and "size &lt;b&gt;" in svg and "a&amp;b" in svg
    assert svg.count("<circle") == 2
    empty = time_chart("nothing", [Series("x", [])], 0, 100, str)
    assert "no data yet" in empty


def test_a_young_watchdog_charts_its_last_hour_an_old_one_its_last_week():
    now = 1_800_000_000.0
    assert chart_window(now, []) == (now - 3600, now)
    assert chart_window(now, [now - 7200]) == (now - 7200, now)
    assert chart_window(now, [now - 30 * 86400]) == (now - 7 * 86400, now)


def test_the_charts_are_drawn_again_only_when_the_history_or_the_minute_changes(monkeypatch):
    import watchdog.web.status_page as page
    from tests.unit.test_web_exposure import fake_watchdog
    from watchdog.web.public import status_view

    drawn: list[float] = []
    original = page._charts

    def counting(view: page.StatusView) -> str:
        drawn.append(view.now)
        return original(view)

    monkeypatch.setattr(page, "_charts", counting)
    service = fake_watchdog(None)
    cache = page.ChartCache()
    view = status_view(service)
    first = page.render(view, cache)
    assert page.render(view, cache) == first and len(drawn) == 1
    service.state.history.note_size(view.now, 123_456_789)
    assert page.render(status_view(service), cache) != first and len(drawn) == 2
