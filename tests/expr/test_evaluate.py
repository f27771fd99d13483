"""Valid expressions and their values."""

from __future__ import annotations

import decimal
import threading
from decimal import Decimal
from typing import Any

import pytest

from rules_engine.expr import BUILTIN_NAMES, Expression, compile_expression

from expr_fixtures import ALL_NAMES, PRICE_NAMES


def value(source: str, env: dict[str, Any]) -> Any:
    return compile_expression(source, ALL_NAMES).evaluate(env)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("price > 40000", True),
        ("bid < ask and ask - bid == 1", True),
        ("price * 2", Decimal("86001.0")),
        ("price * 0.1", Decimal("4300.05")),  # a float literal is the Decimal it spells
        ("0.1 + 0.2 == 0.3", True),
        ("1e-3 * 1000 == 1", True),
        ("7 // 2 + 7 % 2", 4),
        ("7 / 2", 3.5),
        ("2 ** 10", 1024),
        ("-price < 0 < price", True),
        ("1 < 2 < 3 > 2", True),
        ("1 < 2 > 3", False),
        ("not (price > 50000)", True),
        ("'big' if price > 40000 else 'small'", "big"),
        ("symbol == 'XBTUSD' and symbol in ['XBTUSD', 'ETHUSD']", True),
        ("symbol in {'XBTUSD', 'ETHUSD'}", True),
        ("symbol[:3]", "XBT"),
        ("symbol[-3:]", "USD"),
        ("symbol + '/EUR'", "XBTUSD/EUR"),
        ("'-' * 3", "---"),
        ("(1, 2) + (3,)", (1, 2, 3)),
        ("[1, 2][1]", 2),
        ("{'a': 1}['a']", 1),
        ("None is None", True),
        ("0xff & 0x0f | 0x100 ^ 1", 0x10F),
        ("1 << 10 >> 2", 256),
        ("~5", -6),
        ("signal['action'] == 'buy'", True),
        ("signal.action", "buy"),
        ("signal.qty * price", Decimal("430.005")),
        ("signal.meta.tags[1]", "b"),
        ("signal['meta']['score'] >= 7", True),
        ("'qty' in signal", True),
        ("balance('ZUSD') >= 1000", True),
        ("balance(asset='XXBT')", Decimal("0.5")),
        ("price_of('ETHUSD') < price_of(symbol)", True),
        ("len(open_orders('XBTUSD')) == 1", True),
        ("open_orders('XBTUSD')[0].price", Decimal("42000")),
        ("now - scheduled_time", 0.5),
        ("rule_id", "dip-buyer"),
    ],
)
def test_values(source: str, expected: Any, env: dict[str, Any]) -> None:
    result = value(source, env)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("min(3, 1, 2)", 1),
        ("max([1, 5, 2])", 5),
        ("max([], default=0)", 0),
        ("abs(bid - ask)", Decimal("1")),
        ("round(price)", 43000),  # half to even, as Python rounds
        ("round(price, -3)", Decimal("4.3E+4")),
        ("round(2.675, 2)", Decimal("2.68")),  # literal is Decimal("2.675"), not the float
        ("int('42') + int(price)", 43042),
        ("float(signal.qty)", 0.01),
        ("decimal('0.1') + decimal(0.2)", Decimal("0.3")),
        ("str(price) + ' ' + str(None)", "43000.5 None"),
        ("bool(0) or bool('x')", True),
        ("len(symbol) + len(signal)", 9),
        ("sum([1, 2, 3.5])", Decimal("6.5")),  # literals are Decimals
        ("any([False, price > 1]) and not all([True, False])", True),
        ("sqrt(16.0)", Decimal("4.0")),
        ("sqrt(price * 0 + 16)", Decimal("4")),
        ("floor(price) + ceil(0.2)", 43001),
        ("log10(1000)", 3.0),
        ("log(e) == 1", True),
        ("log(8, 2)", 3.0),
        ("log2(8)", 3.0),
        ("exp(0)", 1.0),
        ("round(pi, 2)", 3.14),
        ("isfinite(price) and not isfinite(inf)", True),
    ],
)
def test_functions(source: str, expected: Any, env: dict[str, Any]) -> None:
    assert value(source, env) == expected


def test_decimal_meets_float_through_its_shortest_text(env: dict[str, Any]) -> None:
    env["ratio"] = 0.1  # a float from JSON or from a math function
    expression = compile_expression("price * ratio + sqrt(2)", PRICE_NAMES | {"ratio"})
    result = expression.evaluate(env)
    assert isinstance(result, Decimal)
    assert result == Decimal("4300.05") + Decimal("1.4142135623730951")


def test_decimal_float_comparison_uses_the_same_conversion(env: dict[str, Any]) -> None:
    env["ratio"] = 0.1
    assert compile_expression("ratio == decimal('0.1')", {"ratio"}).evaluate(env) is True


def test_boolean_operators_short_circuit(env: dict[str, Any]) -> None:
    env["qty"] = 0
    expression = compile_expression("qty != 0 and price / qty > 1", PRICE_NAMES | {"qty"})
    assert expression.evaluate(env) is False
    assert compile_expression("qty == 0 or 1 / qty", {"qty"}).evaluate(env) is True


def test_names_lists_every_free_name() -> None:
    expression = compile_expression("price > 1 and balance('ZUSD') > min(2, 3) and signal.qty", ALL_NAMES)
    assert isinstance(expression, Expression)
    assert expression.names == {"price", "balance", "min", "signal"}
    assert expression.source == "price > 1 and balance('ZUSD') > min(2, 3) and signal.qty"


def test_builtin_names_are_documented_set() -> None:
    assert {"min", "max", "abs", "round", "sqrt", "log", "exp", "floor", "ceil", "pi", "True"} <= BUILTIN_NAMES
    assert not {"open", "getattr", "eval", "type", "format", "__import__"} & BUILTIN_NAMES


def test_builtins_cannot_be_shadowed_by_the_environment(env: dict[str, Any]) -> None:
    env["min"] = lambda *args: "hijacked"
    assert compile_expression("min(1, 2)", set()).evaluate(env) == 1


def test_each_evaluation_sees_only_its_own_environment(env: dict[str, Any]) -> None:
    expression = compile_expression("price * 2", PRICE_NAMES)
    assert expression.evaluate({"price": Decimal(1)}) == 2
    assert expression.evaluate({"price": Decimal(5)}) == 10
    with pytest.raises(Exception, match="'price' has no value"):
        expression.evaluate({})


def test_reentrant_evaluation_restores_the_outer_environment() -> None:
    inner = compile_expression("price + 1", PRICE_NAMES)
    outer = compile_expression("price_of('X') + price", PRICE_NAMES)

    def price_of(symbol: str) -> Decimal:
        return inner.evaluate({"price": Decimal(100)})

    assert outer.evaluate({"price": Decimal(1), "price_of": price_of}) == Decimal(102)


def test_threads_evaluate_independently() -> None:
    expression = compile_expression("price * 3", PRICE_NAMES)
    results: dict[int, list[Any]] = {}

    def work(n: int) -> None:
        results[n] = [expression.evaluate({"price": Decimal(n)}) for _ in range(200)]

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(values == [Decimal(n * 3)] * 200 for n, values in results.items())


def test_decimal_results_do_not_depend_on_the_callers_context() -> None:
    expression = compile_expression("price / 3", PRICE_NAMES)
    with decimal.localcontext(decimal.Context(prec=3, traps=[])):
        result = expression.evaluate({"price": Decimal(1)})
    assert result == Decimal("0.3333333333333333333333333333")


def test_multi_line_expression_in_parentheses(env: dict[str, Any]) -> None:
    source = "(\n  price > 40000\n  and balance('ZUSD') > 100  # enough cash\n)"
    assert compile_expression(source, PRICE_NAMES).evaluate(env) is True
