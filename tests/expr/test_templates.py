"""Message templates for log/notify: rendering, load-time checks, no format strings."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from expr_fixtures import ALL_NAMES, PRICE_NAMES

from rules_engine.expr import ExpressionError, MessageTemplate, compile_template

NAMES = ALL_NAMES | {"volume", "value"}


def render(text: str, env: dict[str, Any]) -> str:
    return compile_template(text, NAMES).render(env)


def test_renders_names_and_paths(env: dict[str, Any]) -> None:
    env["volume"] = Decimal("0.01000000")
    text = "bought {volume} {symbol} at {price} ({signal.action}, {signal[qty]}, {signal['meta'][tags][-1]})"
    assert render(text, env) == "bought 0.01000000 XBTUSD at 43000.5 (buy, 0.01, b)"


def test_names_are_the_placeholder_roots() -> None:
    template = compile_template("{price} {signal.action} {signal[qty]} {{literal}}", ALL_NAMES)
    assert isinstance(template, MessageTemplate)
    assert template.names == {"price", "signal"}
    assert template.text == "{price} {signal.action} {signal[qty]} {{literal}}"


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (Decimal("1E+2"), "100"),
        (Decimal("0.00001"), "0.00001"),
        (Decimal("-12.50"), "-12.50"),
        (Decimal("1E+60"), "1E+60"),
        (Decimal("NaN"), "NaN"),
        (0.1, "0.1"),
        (3, "3"),
        (True, "True"),
        (None, "None"),
        ("line\nbreak\x1b[31m\u2028", "line\\nbreak\\x1b[31m\\u2028"),
        ({"a": Decimal("1.5"), "b": [1, None]}, '{"a": "1.5", "b": [1, null]}'),
        ("x" * 500, "x" * 199 + "…"),
        ("{0.__class__} {price}", "{0.__class__} {price}"),  # values are never formatted again
    ],
)
def test_value_rendering(value: Any, shown: str) -> None:
    assert render("{value}", {"value": value}) == shown


@pytest.mark.parametrize(
    ("text", "value", "shown"),
    [
        ("{value:.2f}", Decimal("43000.125"), "43000.12"),  # half to even
        ("{value:.2f}", Decimal("43000.135"), "43000.14"),
        ("{value:.0f}", Decimal("2.5"), "2"),
        ("{value:.3f}", 0.1, "0.100"),
        ("{value:.1f}", 7, "7.0"),
        ("{value:.2f}", Decimal("Infinity"), "Infinity"),
    ],
)
def test_decimal_places(text: str, value: Any, shown: str) -> None:
    assert render(text, {"value": value}) == shown


def test_literal_braces() -> None:
    assert render("{{not a placeholder}} {value}}}", {"value": 1}) == "{not a placeholder} 1}"


@pytest.mark.parametrize(
    ("text", "message", "column"),
    [
        ("at {pirce}", "unknown name 'pirce' (did you mean 'price'?)", 4),
        ("{x.__class__}", "names starting with '_' are not allowed: '.__class__'", 1),
        ("{signal.__init__.__globals__}", "names starting with '_' are not allowed: '.__init__'", 1),
        ("{__import__}", "names starting with '_' are not allowed: '__import__'", 1),
        ("{signal!r}", "invalid placeholder {signal!r}", 1),
        ("{0}", "invalid placeholder {0}", 1),
        ("{signal.action()}", "invalid placeholder", 1),
        ("{price + 1}", "invalid placeholder", 1),
        ("{}", "empty placeholder", 1),
        ("ok {price", "'{' is never closed", 4),
        ("ok {price {symbol}", "'{' is never closed", 4),
        ("ok } here", "single '}'", 4),
        ("{price:>1000000000}", "unsupported format ':>1000000000'", 1),
        ("{price:.99f}", "unsupported format", 1),
        ("{price:{symbol}}", "'{' is never closed", 1),
        ("{balance}", "'balance' is a function", 1),
        ("{signal[]}", "empty [] in {signal[]}", 1),
    ],
)
def test_load_errors(text: str, message: str, column: int) -> None:
    with pytest.raises(ExpressionError) as caught:
        compile_template(text, PRICE_NAMES | {"x"})
    assert message in caught.value.message
    assert caught.value.column == column


def test_only_allowed_names_not_sandbox_builtins() -> None:
    with pytest.raises(ExpressionError, match="unknown name 'pi'"):
        compile_template("{pi}", PRICE_NAMES)


def test_template_length_is_limited() -> None:
    with pytest.raises(ExpressionError, match="message too long"):
        compile_template("x" * 5000, PRICE_NAMES)


def test_template_must_be_text() -> None:
    with pytest.raises(ExpressionError, match="a message must be text"):
        compile_template(None, PRICE_NAMES)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{signal[nope]}", "no key 'nope' in {signal[nope]}"),
        ("{signal.meta.tags[9]}", "position 9 out of range in {signal.meta.tags[9]}"),
        ("{signal.meta.tags.first}", "a list position must be a number"),
        ("{price.real}", "cannot look up 'real' in a Decimal"),
        ("{symbol:.2f}", "':.2f' formats numbers, not str"),
        ("{signal[__class__]}", "no key '__class__'"),  # an item lookup, never an attribute
        ("{now}", "a function cannot be shown"),
    ],
)
def test_render_errors(text: str, message: str, env: dict[str, Any]) -> None:
    env["now"] = lambda: 0
    template = compile_template(text, NAMES)
    with pytest.raises(ExpressionError) as caught:
        template.render(env)
    assert message in caught.value.message
    assert caught.value.column == 1


def test_missing_value_names_the_placeholder() -> None:
    template = compile_template("at {price} then {symbol}", PRICE_NAMES)
    with pytest.raises(ExpressionError) as caught:
        template.render({"price": 1})
    assert (caught.value.message, caught.value.column) == ("no value for 'symbol' in {symbol}", 17)


def test_integer_keys_reach_integer_mapping_keys() -> None:
    assert render("{value[1]}", {"value": {1: "one"}}) == "one"


def test_huge_places_on_a_huge_number_fail_cleanly() -> None:
    with pytest.raises(ExpressionError, match="invalid decimal operation"):
        render("{value:.18f}", {"value": Decimal("1e30")})
