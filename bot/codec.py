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
  ``$decimal``, ``$uuid``;
- an Enum member (python-telegram-bot's idiom for conversation states: ``class State(int,
  Enum)``, IntEnum, StrEnum, Flag) as ``{"$enum": ["module:Class", "MEMBER"]}``, a combination of
  Flag members as ``{"$flag": ["module:Class", 5]}``, an instance of an int or str subclass as
  ``{"$int": ["module:Class", 5]}`` / ``{"$str": ["module:Class", "x"]}``.

A class named in stored data is untrusted input, so reading it back never runs code of the data's
choosing: the module must already be imported by the running bot (stored data never causes an
import), the class is found through plain ``__dict__`` lookups (no ``getattr`` hooks, no
descriptors), it must be an Enum (a member is looked up by name; only a Flag combination is
built by its class from an int) or a plain int/str subclass (built with ``int.__new__`` /
``str.__new__``: its own constructor does not run).
Anything else is refused with :class:`UnreadableValue`. Writing checks the same way that the class
can be found again (a class defined inside a function cannot), and refuses an int/str subclass
instance that carries attributes besides its value.

Anything else (a Telegram object, a lambda, an instance of your own class) raises
:class:`UnstorableValue` when it is *written*, naming where it sits (``user_data[42]['x'][0]``), so
nothing is silently dropped or turned into something else. Stored text that does not decode
(malformed, an unknown tag, a refused class) raises :class:`UnreadableValue` when it is *read*.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
import re
import sys
import types
import uuid
from collections.abc import Mapping
from decimal import Decimal
from enum import Enum, Flag
from typing import Any

MAX_DEPTH = 100
MAX_CLASS_PATH = 300

_CLASS_DICT = type.__dict__["__dict__"]
_CLASS_PATH = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", re.ASCII)


class UnstorableValue(TypeError):
    """A value the persistence cannot store exactly. Raised at write time."""


class UnreadableValue(ValueError):
    """Stored text that does not decode to a value (malformed, forged or from other code)."""


SUPPORTED = (
    "None, bool, int, float, str, bytes, list, tuple, set, frozenset, dict (any hashable keys of "
    "these types), datetime, date, time, timedelta, Decimal, UUID, Enum members, instances of "
    "int and str subclasses (classes defined at module level)"
)


def class_path(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def find_class(path: object) -> type:
    """The class a stored ``module:Qualified.Name`` names, found without running any code of the
    data's choosing (see the module docstring); UnreadableValue if there is none."""
    if not isinstance(path, str) or len(path) > MAX_CLASS_PATH or not _CLASS_PATH.fullmatch(path):
        raise UnreadableValue(f"not a class path: {str(path)[:80]!r}")
    module_name, qualname = path.split(":")
    found: object = sys.modules.get(module_name)
    if found is None:
        raise UnreadableValue(f"{path}: module {module_name!r} is not loaded (never imported here)")
    for part in qualname.split("."):
        if isinstance(found, types.ModuleType):
            namespace: Mapping[str, object] = found.__dict__
        elif isinstance(found, type):
            namespace = _CLASS_DICT.__get__(found)  # the real one, whatever a metaclass says
        else:
            raise UnreadableValue(f"{path}: {part!r} is not inside a module or class")
        found = namespace.get(part)
        if found is None:
            raise UnreadableValue(f"{path}: no {part!r} there")
    if not isinstance(found, type):
        raise UnreadableValue(f"{path}: not a class")
    return found


def _findable(cls: type, where: str) -> str:
    path = class_path(cls)
    try:
        same = find_class(path) is cls
    except UnreadableValue:
        same = False
    if not same:
        raise UnstorableValue(
            f"{where}: {path} cannot be found again by its name when read back (a class "
            "defined inside a function, or shadowed?); define it at module level"
        )
    return path


def _subclass_value(value: Any, base: type, where: str) -> dict[str, Any]:
    if getattr(value, "__dict__", None):
        raise UnstorableValue(
            f"{where}: a {class_path(type(value))} carries attributes besides its value"
        )
    plain = int.__int__(value) if base is int else str.__str__(value)  # not the subclass's own
    return _tag("$int" if base is int else "$str", [_findable(type(value), where), plain])


def _enum_member(value: Enum, where: str) -> dict[str, Any]:
    cls = type(value)
    path = _findable(cls, where)
    if value.name is not None and cls.__members__.get(value.name) is value:
        return _tag("$enum", [path, value.name])
    if isinstance(value, Flag) and type(value.value) is int:
        return _tag("$flag", [path, value.value])
    raise UnstorableValue(f"{where}: {path} member {value!r} has no name to store")


def _read_enum(inner: Any, by_name: bool) -> Enum:
    path, ref = inner
    cls = find_class(path)
    if not issubclass(cls, Enum):
        raise UnreadableValue(f"{path}: not an Enum")
    if by_name:
        member = cls.__members__.get(ref) if isinstance(ref, str) else None
        if member is None:
            raise UnreadableValue(f"{path}: no member {str(ref)[:80]!r}")
        return member
    if not issubclass(cls, Flag) or type(ref) is not int:
        raise UnreadableValue(f"{path}: not a Flag combination")
    return cls(ref)


def _read_subclass(inner: Any, base: type) -> Any:
    path, plain = inner
    cls = find_class(path)
    plain_subclass = issubclass(cls, base) and cls is not base and not issubclass(cls, Enum | bool)
    if not plain_subclass or type(plain) is not base:
        raise UnreadableValue(f"{path}: not a plain {base.__name__} subclass")
    return base.__new__(cls, plain)


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
    if isinstance(value, Enum):
        return _enum_member(value, where)
    if isinstance(value, int) and not isinstance(value, bool):
        return _subclass_value(value, int, where)
    if isinstance(value, str):
        return _subclass_value(value, str, where)
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
    if tag in ("$enum", "$flag"):
        return _read_enum(inner, by_name=tag == "$enum")
    if tag in ("$int", "$str"):
        return _read_subclass(inner, int if tag == "$int" else str)
    raise UnreadableValue(f"unknown tag {tag[:40]!r} in stored data")


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
    """The stored value; UnreadableValue for anything :func:`dumps` could not have written."""
    try:
        return from_jsonable(json.loads(text))
    except UnreadableValue:
        raise
    except (ValueError, TypeError, KeyError, RecursionError) as error:
        raise UnreadableValue(f"{type(error).__name__}: {str(error)[:200]}") from None
