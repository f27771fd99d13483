"""Issue 10, finding 4: a template cuts every value to 200 characters, whatever its type
(a 60 000-digit number made a 158 639-character log line)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from expr_fixtures import SIGNAL_NAMES

from rules_engine.expr import compile_template
from rules_engine.expr.limits import MAX_RENDERED_VALUE

NOTE = "note: {signal.note}"


@pytest.mark.parametrize("value", [
    Decimal("1." + "1" * 60_000),  # plain notation keeps every digit
    Decimal("1" * 60_000),
    2**100_000,  # more digits than Python prints
    10**3000,
    float("1e300"),
    "x" * 60_000,
    ["x" * 1000] * 100,
    {"k": "v" * 60_000},
    True,
], ids=["decimal-fraction", "decimal-integer", "huge-int", "int", "float", "text", "list", "mapping", "bool"])
def test_every_value_is_cut_to_the_documented_length(value: Any) -> None:
    rendered = compile_template(NOTE, SIGNAL_NAMES).render({"signal": {"note": value}})
    assert rendered.startswith("note: ")
    assert len(rendered) - len("note: ") <= MAX_RENDERED_VALUE == 200


def test_a_long_number_ends_with_an_ellipsis() -> None:
    rendered = compile_template(NOTE, SIGNAL_NAMES).render({"signal": {"note": Decimal("1" * 60_000)}})
    assert rendered == "note: " + "1" * 199 + "…"
