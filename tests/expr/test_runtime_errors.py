"""Evaluation errors are ExpressionErrors that say what failed and where."""

from __future__ import annotations

import sys
from decimal import Decimal
from typing import Any

import pytest
from expr_fixtures import ALL_NAMES

from rules_engine.expr import ExpressionError, compile_expression


def run_error(source: str, env: dict[str, Any], names: frozenset[str] = ALL_NAMES) -> ExpressionError:
    expression = compile_expression(source, names)
    with pytest.raises(ExpressionError) as caught:
        expression.evaluate(env)
    return caught.value


def test_division_by_zero_names_the_failing_part(env: dict[str, Any]) -> None:
    env["qty"] = 0
    error = run_error("1 + price / qty", env, ALL_NAMES | {"qty"})
    assert error.message == "division by zero in `price / qty`"
    assert error.column == 5
    assert str(error) == "division by zero in `price / qty` (at column 5)"


def test_decimal_division_by_zero(env: dict[str, Any]) -> None:
    env["qty"] = Decimal(0)
    assert run_error("price / qty", env, ALL_NAMES | {"qty"}).message == "division by zero in `price / qty`"


def test_missing_signal_key(env: dict[str, Any]) -> None:
    env["signal"] = {"action": "buy"}
    error = run_error('signal.action == "buy" and signal["qty"] > 1', env)
    assert error.message == "no key 'qty' in `signal[\"qty\"]`"
    assert error.column == 28


def test_missing_signal_field(env: dict[str, Any]) -> None:
    env["signal"] = {}
    error = run_error("signal.qty", env)
    assert (error.message, error.column) == ("no field 'qty' in `signal.qty`", 1)


def test_index_out_of_range(env: dict[str, Any]) -> None:
    assert run_error("signal.meta.tags[5]", env).message == "index 5 out of range in `signal.meta.tags[5]`"


def test_indexing_a_number(env: dict[str, Any]) -> None:
    assert "cannot index a Decimal" in run_error("price[0]", env).message


def test_runtime_function_raising(env: dict[str, Any]) -> None:
    def balance(asset: str) -> Decimal:
        raise RuntimeError("exchange unavailable")

    env["balance"] = balance
    error = run_error("price > 1 and balance('ZUSD') > 100", env)
    assert error.message == "balance() failed: RuntimeError: exchange unavailable in `balance('ZUSD')`"
    assert error.column == 15


def test_runtime_function_with_unknown_key(env: dict[str, Any]) -> None:
    assert run_error("balance('NOPE')", env).message == "balance() failed: KeyError: 'NOPE' in `balance('NOPE')`"


def test_runtime_function_recursing_forever(env: dict[str, Any]) -> None:
    def balance(asset: str) -> Any:
        return balance(asset)

    env["balance"] = balance
    assert run_error("balance('ZUSD')", env).message.startswith("balance() failed: recursion too deep")
    assert sys.getrecursionlimit() >= 1000  # the limit was not changed


def test_runtime_function_out_of_memory(env: dict[str, Any]) -> None:
    def balance(asset: str) -> Any:
        raise MemoryError

    env["balance"] = balance
    assert run_error("balance('ZUSD')", env).message.startswith("balance() failed: out of memory")


def test_name_not_in_the_environment(env: dict[str, Any]) -> None:
    del env["bid"]
    assert run_error("bid > 1", env).message == "'bid' has no value in this evaluation in `bid`"


def test_runtime_name_that_is_not_callable(env: dict[str, Any]) -> None:
    env["balance"] = Decimal(5)
    assert run_error("balance('ZUSD')", env).message.startswith("'balance' is not a function")


def test_none_value_in_a_comparison(env: dict[str, Any]) -> None:
    env["bid"] = None
    message = run_error("bid > 1", env).message
    assert message.startswith("TypeError: '>' not supported between instances of 'NoneType' and 'int'")


def test_text_plus_number(env: dict[str, Any]) -> None:
    assert run_error("symbol + 1", env).message.startswith("TypeError: can only concatenate str")


def test_builtin_function_misuse(env: dict[str, Any]) -> None:
    assert "min() failed: ValueError" in run_error("min(symbol[:0])", env).message
    assert "min() failed: TypeError" in run_error("min([price], symbol)", env).message
    assert "round() takes a whole number of digits" in run_error("round(price, 1.5)", env).message
    assert "decimal() got text that is not a number" in run_error("decimal(symbol)", env).message


def test_messages_show_source_not_values(env: dict[str, Any]) -> None:
    env["signal"] = {"qty": Decimal("123.456789"), "token": "s3cr3t-value"}
    message = str(run_error("signal.qty / (signal.token == 'x')", env))
    assert "123.456789" not in message and "s3cr3t-value" not in message
    assert "signal.qty / (signal.token == 'x')" in message


def test_a_failed_evaluation_leaves_the_expression_usable(env: dict[str, Any]) -> None:
    expression = compile_expression("price / qty", ALL_NAMES | {"qty"})
    with pytest.raises(ExpressionError):
        expression.evaluate({**env, "qty": 0})
    assert expression.evaluate({**env, "qty": 2}) == Decimal("21500.25")
