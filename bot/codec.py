"""Exact, readable encoding of persisted values: JSON with a few tags.

python-telegram-bot hands the persistence plain Python values (user, chat and bot data,
conversation keys and states, callback data). JSON alone would turn integer keys into strings and
tuples into lists; pickle would store anything, opaquely, and run code when read back. This codec
writes JSON that any tool can read and that decodes to an equal value of the same types:

- ``None``, ``bool``, ``int``, ``str`` and finite ``float`` as themselves; ``list`` as an array;
- a ``dict`` whose keys are all strings (none starting with ``$``) as an object;
- every other value as a one-key object naming its type: ``{"$dict": [[key, value], ...]}`` (any
  hashable keys: ``1`` stays an int), ``$tuple``, ``$set``, ``$frozenset``, ``$bytes`` (base64),
  ``$float`` (``nan``, ``inf``, ``-inf``), ``$datetime``, ``$date``, ``$time``, ``$timedelta``,
  ``$decimal``, ``$uuid``.

Anything else (a Telegram object, a lambda, an instance of your own class) raises
:class:`UnstorableValue` when it is *written*, naming where it sits (``user_data[42]['x'][0]``), so
nothing is silently dropped or turned into something else.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
import uuid
from decimal import Decimal
from typing import Any

MAX_DEPTH = 100


class UnstorableValue(TypeError):
    """A value the persistence cannot store exactly. Raised at write time."""


SUPPORTED = (
    "None, bool, int, float, str, bytes, list, tuple, set, frozenset, dict (any hashable keys of "
    "these types), datetime, date, time, timedelta, Decimal, UUID"
)


def _tag(name: str, value: Any) -> dict[str, Any]:
    return {name: value}


def to_jsonable(value: Any, where: str = "value", _depth: int = 0) -> Any:
    """The JSON-ready form of ``value``; UnstorableValue if it has no exact form."""
    if _depth > MAX_DEPTH:
        raise UnstorableValue(f"{where}: nested deeper than {MAX_DEPTH} levels (a cycle?)")
    kind = type(value)
    if value is None or kind is bool or kind is str or kind is int:
        return value
    if kind is float:
        if math.isfinite(value):
            return value
        return _tag("$float", repr(value))  # 'nan', 'inf', '-inf'
    if kind is list:
        return [to_jsonable(item, f"{where}[{i}]", _depth + 1) for i, item in enumerate(value)]
    if kind is dict:
        if all(type(key) is str and not key.startswith("$") for key in value):
            return {
                key: to_jsonable(item, f"{where}[{key!r}]", _depth + 1)
                for key, item in value.items()
            }
        return _tag(
            "$dict",
            [
                [
                    to_jsonable(key, f"{where} (a key)", _depth + 1),
                    to_jsonable(item, f"{where}[{key!r}]", _depth + 1),
                ]
                for key, item in value.items()
            ],
        )
    if kind is tuple:
        return _tag(
            "$tuple",
            [to_jsonable(item, f"{where}[{i}]", _depth + 1) for i, item in enumerate(value)],
        )
    if kind is set or kind is frozenset:
        items = [to_jsonable(item, f"{where} (an element)", _depth + 1) for item in value]
        # A stable order: the same set always encodes to the same text (cheap change detection).
        items.sort(key=lambda item: json.dumps(item, sort_keys=True))
        return _tag("$set" if kind is set else "$frozenset", items)
    if kind is bytes:
        return _tag("$bytes", base64.b64encode(value).decode("ascii"))
    if kind is dt.datetime:
        return _tag("$datetime", value.isoformat())
    if kind is dt.date:
        return _tag("$date", value.isoformat())
    if kind is dt.time:
        return _tag("$time", value.isoformat())
    if kind is dt.timedelta:
        return _tag("$timedelta", [value.days, value.seconds, value.microseconds])
    if kind is Decimal:
        return _tag("$decimal", str(value))
    if kind is uuid.UUID:
        return _tag("$uuid", str(value))
    raise UnstorableValue(
        f"{where}: cannot store a value of type {kind.__module__}.{kind.__qualname__} "
        f"(storable: {SUPPORTED})"
    )


def from_jsonable(value: Any) -> Any:
    """The inverse of :func:`to_jsonable`."""
    if isinstance(value, list):
        return [from_jsonable(item) for item in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        ((tag, inner),) = value.items()
        if tag.startswith("$"):
            return _untag(tag, inner)
    return {key: from_jsonable(item) for key, item in value.items()}


def _untag(tag: str, inner: Any) -> Any:
    if tag == "$dict":
        return {_hashable(from_jsonable(key)): from_jsonable(item) for key, item in inner}
    if tag == "$tuple":
        return tuple(from_jsonable(item) for item in inner)
    if tag == "$set":
        return {_hashable(from_jsonable(item)) for item in inner}
    if tag == "$frozenset":
        return frozenset(_hashable(from_jsonable(item)) for item in inner)
    if tag == "$bytes":
        return base64.b64decode(inner)
    if tag == "$float":
        return float(inner)
    if tag == "$datetime":
        return dt.datetime.fromisoformat(inner)
    if tag == "$date":
        return dt.date.fromisoformat(inner)
    if tag == "$time":
        return dt.time.fromisoformat(inner)
    if tag == "$timedelta":
        days, seconds, microseconds = inner
        return dt.timedelta(days=days, seconds=seconds, microseconds=microseconds)
    if tag == "$decimal":
        return Decimal(inner)
    if tag == "$uuid":
        return uuid.UUID(inner)
    raise ValueError(f"unknown tag {tag!r} in stored data")


def _hashable(value: Any) -> Any:
    # Keys and set elements were hashable when written; lists only appear there as tuples.
    return value


def dumps(value: Any, where: str = "value") -> str:
    """Canonical text: the same value always gives the same text (keys keep insertion order).

    Readable UTF-8 unless a string holds a lone surrogate (not valid UTF-8, so no database could
    store it as text): then everything non-ASCII is escaped, which round-trips exactly."""
    plain = to_jsonable(value, where)
    text = json.dumps(plain, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(plain, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    return text


def loads(text: str) -> Any:
    return from_jsonable(json.loads(text))
