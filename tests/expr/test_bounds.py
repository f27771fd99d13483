"""Expressions that would take unbounded time or memory fail fast with a clear error,
at load time where the parts are constant and at evaluation otherwise."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from rules_engine.expr import ExpressionError, compile_expression

pytestmark = pytest.mark.timeout(10)  # a backstop: each of these finishes in milliseconds

NAMES = frozenset({"x", "n", "s", "items"})


def load_error(source: str) -> ExpressionError:
    with pytest.raises(ExpressionError) as caught:
        compile_expression(source, NAMES)
    return caught.value


def run_error(source: str, **env: Any) -> ExpressionError:
    expression = compile_expression(source, NAMES)
    with pytest.raises(ExpressionError) as caught:
        expression.evaluate(env)
    return caught.value


def test_tower_of_powers_fails_at_load() -> None:
    error = load_error("10**10**10")
    assert error.message.startswith("result too large: about 33219280949 bits (limit 4096)")
    assert error.column == 1


def test_huge_text_repetition_fails_at_load() -> None:
    assert load_error('"a"*10**10').message.startswith("text too long: 1 * 10000000000 characters")
    assert load_error('10**10*"a"').message.startswith("text too long")


@pytest.mark.parametrize(
    ("source", "env", "message"),
    [
        ("x ** n", {"x": 10, "n": 10**10}, "result too large"),
        ("x ** n", {"x": Decimal(10), "n": 10**10}, "number too large (decimal overflow)"),
        ("x ** n", {"x": 10.0, "n": 10**10}, "OverflowError"),
        ("x ** n", {"x": -8.0, "n": 0.5}, "not a real number"),
        ("x ** 0.5", {"x": Decimal(-8)}, "invalid decimal operation (InvalidOperation)"),
        ("s * n", {"s": "ab", "n": 10**10}, "text too long"),
        ("n * s", {"s": "ab", "n": 6000}, "text too long"),
        ("s + s", {"s": "a" * 6000}, "result too long"),
        ("items + items", {"items": [0] * 6000}, "result too long"),
        ("items * n", {"items": [0], "n": 10}, "repeating a list with * is not allowed"),
        ("x * x", {"x": 2**3000}, "result too large"),
        ("1 << n", {"n": 10**10}, "result too large"),
        ("s % x", {"s": "%*d", "x": (10**9, 1)}, "'%' formatting of text is not allowed"),
        ("int(x)", {"x": Decimal("1e999999")}, "number too large to make an integer"),
        ("floor(x) + ceil(x)", {"x": Decimal("1e999999")}, "number too large to make an integer"),
        ("round(x)", {"x": Decimal("1e999999")}, "number too large to make an integer"),
        ("round(x, n)", {"x": 5, "n": -(10**9)}, "round() takes a whole number of digits"),
        ("int(s)", {"s": "9" * 1234}, "int() of text with more than 1233 digits (limit 4096 bits)"),
        # beyond Python's own 4300-digit guard, whose words name sys.set_int_max_str_digits
        ("int(s)", {"s": "9" * 5000}, "int() of text with more than 1233 digits (limit 4096 bits)"),
        ("sum(items)", {"items": [[0] * 5000] * 5000}, "sum() adds numbers only"),
        ("str(items)", {"items": [["x" * 5000] * 5000]}, "str() takes a number"),
        ("exp(x)", {"x": Decimal("1e10")}, "number too large (decimal overflow)"),
        ("exp(x)", {"x": 1e10}, "OverflowError"),
    ],
)
def test_runtime_blowups_fail_fast(source: str, env: dict[str, Any], message: str) -> None:
    assert message in run_error(source, **env).message


def test_source_length_is_limited_before_parsing() -> None:
    error = load_error("[" + "1," * 100_000 + "]")
    assert error.message == "expression too long: 200002 characters (limit 2000)"
    assert error.column is None


def test_deeply_nested_literal_fails_before_parsing() -> None:
    error = load_error("[" * 900 + "]" * 900)
    assert error.message == "brackets nested too deeply (limit 20)"
    assert error.column == 21


def test_deep_parentheses_fail_before_parsing() -> None:
    assert load_error("(" * 999 + "x" + ")" * 999).message == "brackets nested too deeply (limit 20)"


def test_long_unary_chain_fails_on_depth() -> None:
    assert load_error("-" * 1999 + "x").message == "expression nested too deeply (limit 100)"
    assert load_error("not " * 499 + "x").message == "expression nested too deeply (limit 100)"


def test_long_operator_chain_fails_on_depth() -> None:
    assert load_error("+".join(["x"] * 500)).message == "expression nested too deeply (limit 100)"


def test_wide_literal_fails_on_node_count() -> None:
    assert load_error("[" + "1," * 600 + "]").message == "expression too large (limit 500 parts)"


def test_expressions_at_the_limits_evaluate() -> None:
    assert compile_expression("-" * 98 + "x", NAMES).evaluate({"x": 1}) == 1
    assert compile_expression("+".join(["x"] * 100), NAMES).evaluate({"x": 1}) == 100
    nested = "abs(" * 19 + "[x][0]" + ")" * 19
    assert compile_expression(nested, NAMES).evaluate({"x": -1}) == 1


def test_limits_leave_room_for_real_guards() -> None:
    symbols = ", ".join(f"'S{n}'" for n in range(150))
    expression = compile_expression(f"s in [{symbols}] and " + " and ".join(["x > 1"] * 30), NAMES)
    assert expression.evaluate({"s": "S149", "x": 2}) is True
