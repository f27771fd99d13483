"""Load-time errors: unknown names with their column, forbidden syntax, size limits."""

from __future__ import annotations

import pytest
from expr_fixtures import ALL_NAMES, PRICE_NAMES, SIGNAL_NAMES

from rules_engine.expr import ExpressionError, compile_expression
from rules_engine.registry import unavailable_names


def load_error(source: str, allowed: frozenset[str] = ALL_NAMES) -> ExpressionError:
    with pytest.raises(ExpressionError) as caught:
        compile_expression(source, allowed, unavailable_names())
    return caught.value


def test_unknown_name_reports_its_column_and_a_suggestion() -> None:
    error = load_error("price > 1 and pirce < 2", PRICE_NAMES)
    assert error.column == 15
    assert error.message == "unknown name 'pirce' (did you mean 'price'?)"
    assert str(error) == "unknown name 'pirce' (did you mean 'price'?) (at column 15)"


def test_column_counts_characters_not_bytes_and_includes_leading_space() -> None:
    error = load_error("  'prix €' == symbol and volume > 1", PRICE_NAMES)
    assert error.column == 26
    assert "unknown name 'volume'" in error.message


def test_column_on_a_later_line_is_an_offset_in_the_whole_source() -> None:
    source = "(price > 1\n and nope)"
    error = load_error(source, PRICE_NAMES)
    assert source[error.column - 1 :].startswith("nope")


def test_name_of_another_trigger_type_explains_why() -> None:
    error = load_error("signal.qty > price", SIGNAL_NAMES)
    assert error.column == 14
    assert "'price' is not available here: price triggers provide it" in error.message


def test_without_reasons_a_name_of_another_trigger_type_is_just_unknown() -> None:
    with pytest.raises(ExpressionError, match="unknown name 'price'"):
        compile_expression("price > 1", SIGNAL_NAMES)


@pytest.mark.parametrize(
    ("source", "message", "column"),
    [
        ("import os", "import is not allowed", 1),
        ("from os import system", "import is not allowed", 1),
        ("x = 1", "assignment is not allowed", 3),
        ("price += 1", "assignment is not allowed", 7),
        ("raise SystemExit", "raise is not allowed", 1),
        ("def f(): return 1", "a function definition is not allowed", 1),
        ("class A: pass", "a class definition is not allowed", 1),
        ("for x in []: pass", "a loop is not allowed", 1),
        ("while True: pass", "a loop is not allowed", 1),
        ("if price: 1", "an if statement", 1),
        ("del price", "del is not allowed", 1),
        ("assert price", "assert is not allowed", 1),
        ("price; 1", "only one expression is allowed", 8),
        ("lambda: 0", "lambda functions are not allowed", 1),
        ("[x for x in [1]]", "comprehensions are not allowed", 1),
        ("{x for x in [1]}", "comprehensions are not allowed", 1),
        ("{x: 1 for x in [1]}", "comprehensions are not allowed", 1),
        ("sum(x for x in [1])", "generator expressions are not allowed", 4),
        ("f'{price}'", "f-strings are not allowed", 1),
        ("(y := 1)", "assignment (:=) is not allowed", 2),
        ("min(*[1, 2])", "unpacking with * is not allowed", 5),
        ("[*[1]]", "unpacking with * is not allowed", 2),
        ("max(**{'a': 1})", "unpacking with ** is not allowed", 1),
        ("{**signal}", "unpacking with ** is not allowed", 1),
        ("price @ price", "operator @ is not supported", 1),
        ("symbol.upper()", "only named functions can be called", 1),
        ("open_orders('X')[0]('y')", "only named functions can be called", 1),
        ("signal._private", "names starting with '_' are not allowed: '._private'", 1),
        ("_hidden", "names starting with '_' are not allowed: '_hidden'", 1),
        ("balance(_x=1)", "names starting with '_' are not allowed: '_x'", 1),
        ("b'bytes'", "bytes literals are not allowed", 1),
        ("1j", "complex literals are not allowed", 1),
        ("...", "ellipsis literals are not allowed", 1),
        ("1e400", "number literal out of range", 1),
        ("1" + "0" * 1300, "integer literal too large", 1),
        ("min", "'min' is a function: call it", 1),
        ("max(1, key=abs)", "'abs' is a function: call it", 12),
        ("pi()", "'pi' is not a function", 1),
        ("signal('x')", "'signal' is not a function", 1),
        ("open('/etc/passwd')", "'open' is not available in rule expressions", 1),
        ("1 +", "syntax error", None),
        ("", "empty expression", None),
        ("   ", "empty expression", None),
    ],
)
def test_forbidden_constructs(source: str, message: str, column: int | None) -> None:
    error = load_error(source)
    assert message in error.message
    if column is not None:
        assert error.column == column


def test_syntax_error_points_at_the_problem() -> None:
    error = load_error("price > (1 +")
    assert error.message.startswith("syntax error: ")
    assert error.column == 9


def test_unparenthesized_line_break_gets_a_hint() -> None:
    error = load_error("price > 1\nand bid > 1")
    assert "wrapped in parentheses" in error.message


def test_source_must_be_text() -> None:
    error = load_error(42)  # type: ignore[arg-type]
    assert error.message == "an expression must be text, not int"


def test_constant_parts_are_evaluated_at_load_time() -> None:
    error = load_error("price > 1 / 0")
    assert error.message == "division by zero in `1 / 0`"
    assert error.column == 9
    assert "math domain error" in load_error("price > sqrt(-1)").message
    assert "no key 'b'" in load_error("{'a': 1}['b']").message


def test_error_is_picklable_and_repr_safe() -> None:
    import pickle

    error = load_error("pirce", PRICE_NAMES)
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.message, copy.column) == (error.message, error.column)


@pytest.mark.parametrize(
    ("source", "message", "column"),
    [
        # a thousands separator: Python reads a tuple (always true as a guard) or more arguments
        ("price > 70,500", "several values separated by commas where one value is expected; a comma is not", 12),
        ("price > 70,000", "000 is not a number on its own; a comma is not a thousands separator", 12),
        ("min(price, 70,000)", "000 is not a number on its own", 15),
        ("price > 70,050", "a whole number cannot start with 0 (write 50, not 050); a comma is not", 12),
        # a decimal comma
        ("round(price * 0,99, 1)", "wrong arguments for round(): too many positional arguments; a comma is not", 1),
        ("=1,5"[1:], "several values separated by commas", 3),
        # not a comma, the same checks
        ("(price, bid)", "several values separated by commas where one value is expected", 9),
        ("price > 050", "a whole number cannot start with 0 (write 50, not 050)", 9),
        ("abs()", "wrong arguments for abs(): missing a required argument: 'x'", 1),
        ("round(price, digits=2)", "wrong arguments for round(): got an unexpected keyword argument 'digits'", 1),
        ("min([price], key=abs)", "'abs' is a function: call it", 18),
    ],
)
def test_a_comma_or_a_wrong_call_is_a_load_error(source: str, message: str, column: int) -> None:
    error = load_error(source, PRICE_NAMES)
    assert message in error.message
    assert error.column == column
    if "," not in source:
        assert "thousands" not in error.message


@pytest.mark.parametrize(
    "source",
    ["min(price, 70, 500)", "signal.ticker in ('BTCUSD', 'XBTUSD')", "round(price, 1)", "log(price, 10)",
     "max([price, 1], default=0)", "bool(price)", "price > 0", "price > 70_000"],
)
def test_commas_that_separate_values_still_load(source: str) -> None:
    compile_expression(source, ALL_NAMES, unavailable_names())


@pytest.mark.parametrize(
    ("source", "message", "column"),
    [
        # operators of other languages and spreadsheets
        ("price => 3", "syntax error: '=>' is not an operator: write >=", 7),
        ("price =< 3", "syntax error: '=<' is not an operator: write <=", 7),
        ("price <> 3", "syntax error: '<>' is not an operator: write !=", 7),
        ("price > = 3", "syntax error: write >= without a space", 7),
        ("price > 3 && bid < 2", "syntax error: write and, not &&", 11),
        ("price > 3 || bid < 2", "syntax error: write or, not ||", 11),
        ("!(price > 3)", "syntax error: write not, not !", 1),
        ("price > 3 AND bid < 2", "syntax error: write and in lower case", 11),
        # a comparison written as an assignment
        ("signal.action = 'buy'", "assignment is not allowed: a rule expression is a single expression (to compare, "
                                  "write ==)", 15),
        # cut short: the column is that of the operator that lacks its right side
        ("price > 3 and", "syntax error: the expression stops after 'and': something is missing after it", 11),
        ("price >", "syntax error: the expression stops after '>': something is missing after it", 7),
        # text in quotes is not looked at, and a bracket left open is the problem to report
        ("signal.action == '=>' and", "syntax error: the expression stops after 'and'", 23),
        ("price > (1 +", "syntax error: '(' was never closed", 9),
        # a word meant as text
        ("signal.action == buy", "unknown name 'buy' (text is written in quotes: 'buy')", 18),
    ],
)
def test_a_slip_from_another_language_says_what_to_write(source: str, message: str, column: int) -> None:
    error = load_error(source, SIGNAL_NAMES | PRICE_NAMES)
    assert error.message.startswith(message)
    assert error.column == column
