"""One setting's raw value — the environment's text, or a value passed in by code — turned into
its typed value. Each parser raises ValueError saying why, without the variable's name (the
settings reader adds it) and without echoing the value (it may be a secret).

Written here rather than with a validation framework: pydantic and pydantic-settings cost each
process that reads settings (the watchdog and the bot) about 24 MB of its RSS, an eighth of the
whole stack's 200 MB budget on a 512 MB instance, for some forty plain values."""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from conf.durations import parse_duration
from conf.secret import Secret

Parse = Callable[[Any], Any]

_TRUE = {"1", "true", "t", "yes", "y", "on"}
_FALSE = {"0", "false", "f", "no", "n", "off"}


def text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be text")
    return value


def stripped_or_unset(value: Any) -> str | None:
    """Text with its surrounding spaces removed; blank is unset."""
    if value is None:
        return None
    return text(value).strip() or None


def optional_text(value: Any) -> str | None:
    return None if value is None else text(value)


def secret(value: Any) -> Secret | None:
    """A secret, blank meaning unset."""
    if isinstance(value, Secret):
        value = value.get_secret_value()
    found = stripped_or_unset(value)
    return None if found is None else Secret(found)


def integer(low: int | None = None, high: int | None = None) -> Parse:
    def parse(value: Any) -> int:
        if isinstance(value, bool):
            raise ValueError("must be a whole number")
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, str):
            try:
                value = int(value.strip())
            except ValueError:
                raise ValueError("must be a whole number") from None
        if not isinstance(value, int):
            raise ValueError("must be a whole number")
        _within(value, low, high, inclusive_low=True)
        return value

    return parse


def number(
    low: float | None = None, high: float | None = None, *, inclusive_low: bool = True
) -> Parse:
    def parse(value: Any) -> float:
        if isinstance(value, bool):
            raise ValueError("must be a number")
        if isinstance(value, str):
            try:
                value = float(value.strip())
            except ValueError:
                raise ValueError("must be a number") from None
        if not isinstance(value, int | float) or not math.isfinite(value):
            raise ValueError("must be a number")
        _within(float(value), low, high, inclusive_low=inclusive_low)
        return float(value)

    return parse


def _within(value: float, low: float | None, high: float | None, *, inclusive_low: bool) -> None:
    if low is not None and (value < low if inclusive_low else value <= low):
        bound = "at least" if inclusive_low else "greater than"
        raise ValueError(f"must be {bound} {low:g}")
    if high is not None and value > high:
        raise ValueError(f"must be at most {high:g}")


def duration(value: Any) -> float:
    """``30``, ``30s``, ``5m``, ``1h``, ``7d``: seconds, greater than zero."""
    if not isinstance(value, str | int | float):
        raise ValueError("expected a duration such as 30, 30s, 5m, 1h or 7d")
    return parse_duration(value)


def boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError("must be true or false")


def path(value: Any) -> Path:
    if isinstance(value, Path):
        return value
    return Path(text(value))


def optional_path(value: Any) -> Path | None:
    return None if value is None else path(value)


def choice(*allowed: str, fold: Callable[[str], str] = str.strip) -> Parse:
    def parse(value: Any) -> str:
        found = fold(text(value))
        if found not in allowed:
            raise ValueError(f"use {', '.join(allowed[:-1])} or {allowed[-1]}")
        return found

    return parse


def user_ids(value: Any) -> tuple[int, ...]:
    """``12, 34`` (commas, spaces and a trailing comma allowed), or a sequence of ints."""
    if isinstance(value, str):
        parts = [part.strip() for part in value.split(",") if part.strip()]
        for part in parts:
            if not part.lstrip("-").isdigit():
                raise ValueError(f"{part!r} is not a Telegram user id (a whole number)")
        return tuple(int(part) for part in parts)
    if isinstance(value, list | tuple) and all(
        isinstance(item, int) and not isinstance(item, bool) for item in value
    ):
        return tuple(value)
    raise ValueError("must be Telegram user ids separated by commas")


def on_render(value: Any) -> bool:
    """Render sets RENDER=true; any non-empty value other than a clear "no" means we are there."""
    if isinstance(value, str):
        return value.strip().lower() not in ("", "0", "false", "no")
    return bool(value)


def is_loopback_url(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
