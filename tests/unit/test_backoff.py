"""The one backoff, shared by relaunches, scheduled backups and offsite pushes."""

from __future__ import annotations

import itertools

from watchdog.rules import backoff


def test_delay_grows_and_is_capped():
    delays = [backoff.delay(n, 60.0, 3600.0) for n in range(0, 12)]
    assert delays[0] == 0
    assert delays[1:4] == [60.0, 120.0, 240.0]
    assert all(b >= a for a, b in itertools.pairwise(delays))
    assert max(delays) == 3600.0
    assert backoff.delay(10_000, 60.0, 3600.0) == 3600.0


def test_alert_once_at_the_third_failure():
    assert [n for n in range(10) if backoff.alert_due(n)] == [3]


def test_retry_waits_after_failures_and_starts_over_after_a_success():
    retry = backoff.Retry(first=60.0, cap=3600.0)
    assert retry.ready(0.0)
    assert retry.failed(1000.0) == 60.0
    assert not retry.ready(1059.0)
    assert retry.ready(1060.0)
    assert retry.failed(1060.0) == 120.0
    assert retry.failures == 2
    retry.succeeded()
    assert retry.failures == 0
    assert retry.ready(1061.0)
