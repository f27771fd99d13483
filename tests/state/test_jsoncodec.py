"""The state codec (`rules_engine.jsoncodec`): plain data through its fast encoder, everything
else through the standard one, and what `loads` returns is what `dumps` was given."""

from __future__ import annotations

import enum
import math
import uuid
from decimal import Decimal

import pytest

from rules_engine import jsoncodec


def test_plain_state_round_trips_exactly_with_decimals_and_tiny_floats() -> None:
    value = {"b": [Decimal("0.10"), Decimal("1E+3"), Decimal("-0")], "a": {"t": 1e-7, "u": 1.5e300, "z": -0.0},
             "s": "é ☃ \" \\ \n", "n": None, "flags": [True, False], "big": 2**63 - 1, "neg": -2**63,
             "tuple": (1, "x", Decimal("2.5"))}
    text = jsoncodec.dumps(value)
    back = jsoncodec.loads(text)
    assert back == {**value, "tuple": [1, "x", Decimal("2.5")]}
    assert [str(d) for d in back["b"]] == ["0.10", "1E+3", "-0"]  # exponents kept
    assert math.copysign(1, back["a"]["z"]) == -1
    assert text.index('"a"') < text.index('"b"')  # keys sorted: the same state, the same text


@pytest.mark.parametrize("value", [
    {"nan": [float("nan")]}, {"inf": {"x": float("inf")}}, {"minus_inf": [-math.inf]},
    {"huge": 2**80}, {"surrogate": "\ud800"},
])
def test_values_the_fast_encoder_would_write_differently_still_round_trip(value: dict[str, object]) -> None:
    assert repr(jsoncodec.loads(jsoncodec.dumps(value))) == repr(value)  # repr: nan == nan is False


class Colour(enum.Enum):
    RED = 1


@pytest.mark.parametrize(("value", "message"), [
    ({"rules": {"r": {"c": Colour.RED}}}, "snapshot.rules.r.c: Colour is not JSON-serialisable"),
    ({"id": uuid.UUID(int=1)}, "snapshot.id: UUID is not JSON-serialisable"),
    ({"rules": [{1: "x"}]}, "snapshot.rules[0]: key 1 is not a string"),
    ({"x": {"$decimal": "1"}}, "snapshot.x: the key '$decimal' is reserved"),
])
def test_anything_else_is_refused_with_its_path(value: object, message: str) -> None:
    with pytest.raises(TypeError) as caught:
        jsoncodec.dumps(value, "snapshot")
    assert str(caught.value) == message
