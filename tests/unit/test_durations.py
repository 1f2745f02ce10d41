import pytest

from conf.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30", 30),
        ("30s", 30),
        ("5m", 300),
        ("1h", 3600),
        ("7d", 604800),
        (" 2h ", 7200),
        ("1.5m", 90),
        (45, 45),
    ],
)
def test_parses_what_operators_write(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "1x", "-5", "0", "0s", "5 minutes", "1h30m"])
def test_rejects_what_is_not_a_duration(text):
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"), [(3600, "1h"), (86400, "1d"), (90, "90s"), (300, "5m")]
)
def test_formats_back(seconds, text):
    assert format_duration(seconds) == text
    assert parse_duration(format_duration(seconds)) == seconds
