import io

from watchdog.fatal_listener import listen


def event(name: str, payload: str) -> str:
    header = f"ver:3.0 server:supervisor serial:1 pool:fatal_guard poolserial:1 eventname:{name} len:{len(payload)}\n"
    return header + payload


def test_ends_supervisord_only_when_the_watchdog_goes_fatal():
    stream = event(
        "PROCESS_STATE_FATAL", "processname:other groupname:other from_state:BACKOFF"
    ) + event("PROCESS_STATE_FATAL", "processname:watchdog groupname:watchdog from_state:BACKOFF")
    fatal = []
    out = io.StringIO()
    listen(io.StringIO(stream), out, fatal.append)
    assert [payload["processname"] for payload in fatal] == ["watchdog"]
    assert out.getvalue().count("READY\n") == 3  # ready for each event, and after the last
    assert out.getvalue().count("RESULT 2\nOK") == 2


def test_ends_supervisord_when_the_watchdog_says_no_retry_can_help():
    give_up = "processname:watchdog groupname:watchdog pid:7 channel:stderr\n" + (
        "watchdog: bad setting: PORT: …\nwatchdog: restarting cannot mend this\n"
    )
    other = "processname:watchdog groupname:watchdog pid:7 channel:stderr\nsome warning\n"
    stranger = "processname:other groupname:other pid:8 channel:stderr\n" + (
        "watchdog: restarting cannot mend this\n"
    )
    stream = (
        event("PROCESS_LOG_STDERR", other)
        + event("PROCESS_LOG_STDERR", stranger)
        + event("PROCESS_LOG_STDERR", give_up)
    )
    ended = []
    listen(io.StringIO(stream), io.StringIO(), ended.append)
    assert len(ended) == 1 and ended[0]["pid"] == "7"
