import pytest

from watchdog.rules import restarts


def test_first_restart_within_a_second_then_doubling_up_to_the_cap():
    delays = [restarts.restart_delay(n, cap=10) for n in range(1, 8)]
    assert delays[0] <= 1.0
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert restarts.restart_delay(0, cap=10) == 0


def test_a_long_run_resets_the_failure_count():
    assert restarts.failures_after_exit(5, run_seconds=restarts.STABLE_RUN + 1) == 1
    assert restarts.failures_after_exit(2, run_seconds=3) == 3


def test_crash_loop_from_the_third_short_run():
    assert not restarts.is_crash_loop(2)
    assert restarts.is_crash_loop(3)


@pytest.mark.parametrize(
    ("now", "heartbeat", "stale"),
    [
        (1050, None, False),  # starting, inside the grace
        (1061, None, True),  # never polled
        (1100, 1090, False),
        (1200, 1100, True),
        (1050, 900, False),  # a heartbeat from a previous bot does not count against this one
    ],
)
def test_heartbeat_verdict(now, heartbeat, stale):
    verdict = restarts.heartbeat_verdict(
        now=now, launched_at=1000, last_heartbeat=heartbeat, limit=60
    )
    assert verdict.stale is stale


def test_a_bot_still_starting_gets_the_start_up_grace_even_with_a_short_limit():
    def stale(now: float, heartbeat: float | None) -> bool:
        return restarts.heartbeat_verdict(
            now=now, launched_at=1000, last_heartbeat=heartbeat, limit=3, startup_grace=30
        ).stale

    assert not stale(1010, None)  # importing on a loaded machine: not silent yet
    assert not stale(1010, 990)  # the previous bot's heartbeat does not end the grace
    assert stale(1031, None)  # never polled at all
    assert not stale(1012, 1010)
    assert stale(1014, 1010)  # once it has polled, the short limit applies
