"""The codec's named classes (Enum members, int and str subclasses): exact round trips, and a
stored class path treated as the untrusted input it is."""

from __future__ import annotations

import enum
import sys
import types
from collections.abc import Iterator
from typing import Any

import pytest

from bot import codec
from tests.unit.persistence_backends import Colour, Label, Mode, Number, Perm, Step

HERE = __name__


class Outer:
    class Inner(enum.Enum):
        A = 1


GUARDED_RAN: list[str] = []


class Guarded(enum.Enum):
    """An Enum whose hook records being run: reading a member by name must not run it."""

    A = 1

    @classmethod
    def _missing_(cls, value: object) -> Any:
        GUARDED_RAN.append(f"_missing_({value!r})")
        return None


@pytest.mark.parametrize(
    "value",
    [
        Step.END,
        Colour.GREEN,
        Mode.EDIT,
        Perm.WRITE,
        Perm.READ | Perm.WRITE,
        Perm(0),
        Number(-3),
        Label(""),
        Outer.Inner.A,
        {Step.ONE: {Mode.EDIT: (Number(1), Label("x"))}},
        {Mode.EDIT, Step.TWO},
    ],
    ids=lambda value: repr(sorted(value, key=repr)) if isinstance(value, set) else repr(value),
)
def test_named_classes_round_trip_exactly_and_canonically(value: Any) -> None:
    text = codec.dumps(value)
    back = codec.loads(text)
    assert back == value and type(back) is type(value)
    assert codec.dumps(back) == text
    if isinstance(value, enum.Enum) and not isinstance(value, Perm):
        assert back is value


def test_an_alias_is_stored_as_its_canonical_member() -> None:
    class_path = f"{HERE}:Aliased"
    assert codec.dumps(Aliased.SECOND) == f'{{"$enum":["{class_path}","FIRST"]}}'
    assert codec.loads(codec.dumps(Aliased.SECOND)) is Aliased.FIRST


class Aliased(enum.Enum):
    FIRST = 1
    SECOND = 1


def test_classes_that_cannot_be_found_again_are_refused_at_write_time() -> None:
    class Local(enum.Enum):
        A = 1

    with pytest.raises(codec.UnstorableValue, match=r"state: .*<locals>.Local cannot be found"):
        codec.dumps(Local.A, "state")
    carrying = Number(5)
    carrying.note = "more than a value"  # type: ignore[attr-defined]
    with pytest.raises(codec.UnstorableValue, match="carries attributes"):
        codec.dumps({"x": carrying}, "user_data[1]")


class Quirky(int):
    def __int__(self) -> int:
        return 999


def test_a_subclass_is_stored_by_its_own_value_and_rebuilt_without_its_constructor() -> None:
    assert codec.loads(codec.dumps(Quirky(5))) == 5
    assert type(codec.loads(codec.dumps(Quirky(5)))) is Quirky


@pytest.fixture
def trap_module() -> Iterator[list[str]]:
    """A loaded module whose ``__getattr__`` hook records being asked."""
    asked: list[str] = []
    module = types.ModuleType("codec_trap")

    def hook(name: str) -> Any:
        asked.append(name)
        raise AttributeError(name)

    module.__getattr__ = hook  # type: ignore[method-assign]
    sys.modules["codec_trap"] = module
    try:
        yield asked
    finally:
        del sys.modules["codec_trap"]


@pytest.mark.parametrize(
    "text",
    [
        '{"$enum":["codec_trap:Anything","A"]}',
        '{"$enum":["not_imported_anywhere_zz:E","A"]}',
        '{"$enum":["os:system","A"]}',
        '{"$enum":["os:environ.__class__","A"]}',
        '{"$enum":["../etc:passwd","A"]}',
        '{"$enum":["' + "a" * 400 + ':B","A"]}',
        '{"$enum":[["os"],"A"]}',
        '{"$enum":["tests.unit.test_codec_classes:Guarded","B"]}',
        '{"$flag":["tests.unit.test_codec_classes:Guarded",7]}',
        '{"$flag":["tests.unit.persistence_backends:Perm","3"]}',
        '{"$int":["tests.unit.persistence_backends:Label",1]}',
        '{"$int":["tests.unit.persistence_backends:Number","1"]}',
        '{"$str":["builtins:str","x"]}',
        '{"$enum":"x"}',
        "[" * 100_000,
    ],
)
def test_a_stored_class_path_is_untrusted(text: str, trap_module: list[str]) -> None:
    with pytest.raises(codec.UnreadableValue):
        codec.loads(text)
    assert trap_module == [], "no module hook ran"
    assert GUARDED_RAN == [], "no Enum hook ran"
    assert "not_imported_anywhere_zz" not in sys.modules
