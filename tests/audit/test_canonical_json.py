"""`canonical_json` writes plain data through orjson when that gives the standard encoder's
exact text: the hash chain depends on every byte, so the two must never differ."""

import json
import random
from decimal import Decimal

import pytest

from rules_engine.audit import records
from rules_engine.audit.records import canonical_json

STANDARD = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False,
                            default=records._default)


def standard(value):
    return STANDARD.encode(value)


EDGE_FLOATS = [0.0, -0.0, 1e-4, 9.99999999999999e-05, 1e-05, 2.5e-05, 1e-07, -1.17e-07, 5e-324, 0.1, 1.0, 123.456,
               1796451891.926297, 9999999999999998.0, 1e16, 1.2345678901234568e17, 1e22, 1.5e300, -69500.25]
EDGE_TEXTS = ["", "plain", 'quote"d', "back\\slash", "new\nline", "tab\t", "nul\x00", "unit\x1f", "del\x7f",
              "é", "\u2028", "😀", "</script>", "~ ", "a" * 300]
EDGE_INTS = [0, -1, 2**53 + 1, 2**63 - 1, -(2**63), 2**64 - 1, 2**64, 2**70, -(2**70)]


def test_every_edge_value_is_written_as_the_standard_encoder_writes_it():
    values = [*EDGE_FLOATS, *EDGE_TEXTS, *EDGE_INTS, True, False, None]
    for value in values:
        for wrapped in ({"v": value}, [value], {"outer": {"list": [1, value, (value, "x")]}}):
            assert canonical_json(wrapped) == standard(wrapped), repr(wrapped)


def test_keys_are_sorted_and_escaped_as_the_standard_encoder_does():
    data = {"b": 1, "B": 2, "_": 3, "a b": 4, "é": 5, "z\x7f": 6, 'q"': 7, "": 8}
    assert canonical_json(data) == standard(data)
    assert canonical_json({2: "x", 1: "y"}) == standard({2: "x", 1: "y"}) == '{"1":"y","2":"x"}'  # int keys


def test_random_records_are_written_as_the_standard_encoder_writes_them():
    rng = random.Random(12)
    pool = [*EDGE_FLOATS, *EDGE_TEXTS, *EDGE_INTS, True, None]

    def value(depth):
        roll = rng.random()
        if depth < 3 and roll < 0.2:
            return {rng.choice(EDGE_TEXTS[:8]) + str(n): value(depth + 1) for n in range(rng.randint(0, 4))}
        if depth < 3 and roll < 0.3:
            return [value(depth + 1) for _ in range(rng.randint(0, 4))]
        if roll < 0.5:
            return rng.uniform(-1e6, 1e10) * rng.choice([1e-9, 1e-3, 1, 1e3, 1e9])
        return rng.choice(pool)

    for _ in range(3000):
        data = {"event_time": rng.uniform(1e9, 2e9), "x": value(0)}
        assert canonical_json(data) == standard(data), repr(data)


def test_what_the_standard_encoder_refuses_is_still_refused():
    for bad in ({"v": float("nan")}, {"v": float("inf")}, [float("-inf")]):
        with pytest.raises(ValueError):
            canonical_json(bad)
    with pytest.raises(TypeError):
        canonical_json({"v": object()})


def test_decimals_and_subclasses_are_written_by_the_standard_encoder():
    class Text(str):
        pass

    data = {"price": Decimal("1E+1"), "name": Text("x"), "t": (1, 2)}
    assert canonical_json(data) == '{"name":"x","price":"10","t":[1,2]}'


def test_plain_data_takes_the_fast_path(monkeypatch):
    class Refuses:
        def encode(self, value):
            raise AssertionError("the standard encoder was used")

    monkeypatch.setattr(records, "_CANONICAL", Refuses())
    assert records._FAST, "the installed orjson writes floats as repr does"
    assert canonical_json({"kind": "trigger", "level": "69000", "t": 1796451891.926297, "n": [1, None, True]}) == \
        '{"kind":"trigger","level":"69000","n":[1,null,true],"t":1796451891.926297}'
    with pytest.raises(AssertionError):  # a float outside the fast path's range: the standard encoder
        canonical_json({"t": 1e-05})
