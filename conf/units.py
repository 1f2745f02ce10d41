"""Units shared by the settings, the reports and the code that measures."""

MIB = 1_048_576
"""Bytes in a mebibyte: what the settings (``BACKUP_MIN_FREE_MB``) and every report call MB."""

LAST_MOMENT = 253_402_300_799.0
"""9999-12-31T23:59:59Z: the last second a date can show. A time read from a file beyond it (or
before the epoch) is not a time."""


def is_moment(value: object) -> bool:
    """Whether ``value`` is seconds since the epoch that a date can show (``1e300`` is not)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return 0.0 <= value <= LAST_MOMENT
