"""The functions and constants every expression sees (BUILTIN_NAMES).

Each function is a bounded wrapper: no callbacks (`key=`), no conversions that could
build huge integers or text, and Decimal in gives Decimal out for the math functions.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from typing import Any

from rules_engine.core.number_limits import number_problem

from . import operators
from .errors import EvaluationFault
from .limits import MAX_INT_BITS, MAX_INT_DIGITS, MAX_ROUND_DIGITS, MAX_TEXT_LENGTH

_NUMBERS = (int, float, Decimal)
_MISSING = object()


def _check_int(value: int) -> int:
    if value.bit_length() > MAX_INT_BITS:
        raise EvaluationFault(f"integer too large (limit {MAX_INT_BITS} bits)")
    return value


def _check_decimal_magnitude(value: Any) -> None:
    if isinstance(value, Decimal) and value.is_finite() and value.adjusted() > MAX_INT_DIGITS:
        raise EvaluationFault(f"number too large to make an integer (limit {MAX_INT_DIGITS} digits)")


def _min_max(name: str, pick: Any, args: tuple[Any, ...], default: Any) -> Any:
    if not args:
        raise EvaluationFault(f"{name}() needs at least one argument")
    values = args[0] if len(args) == 1 else args
    if default is _MISSING:
        return pick(values)
    if len(args) != 1:
        raise EvaluationFault(f"{name}() takes default= only with a single list")
    return pick(values, default=default)


def sandbox_min(*args: Any, default: Any = _MISSING) -> Any:
    """min(a, b, ...) or min(list, default=x)."""
    return _min_max("min", min, args, default)


def sandbox_max(*args: Any, default: Any = _MISSING) -> Any:
    """max(a, b, ...) or max(list, default=x)."""
    return _min_max("max", max, args, default)


def sandbox_round(value: Any, ndigits: int | None = None) -> Any:
    """round(x) to an integer, or round(x, n) to n decimal places (|n| <= 30)."""
    if ndigits is None:
        _check_decimal_magnitude(value)
        return round(value)
    if not isinstance(ndigits, int) or abs(ndigits) > MAX_ROUND_DIGITS:
        raise EvaluationFault(f"round() takes a whole number of digits within ±{MAX_ROUND_DIGITS}")
    return round(value, ndigits)


def sandbox_int(value: Any) -> int:
    """int(x): truncates numbers, parses decimal text."""
    _check_decimal_magnitude(value)
    if isinstance(value, str) and sum(char.isdigit() for char in value) > MAX_INT_DIGITS:
        raise EvaluationFault(f"int() of text with more than {MAX_INT_DIGITS} digits (limit {MAX_INT_BITS} bits)")
    return _check_int(int(value))


def sandbox_decimal(value: Any) -> Decimal:
    """decimal(x): an exact Decimal from text, an integer, or a float's shortest text."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float, Decimal)):
        raise EvaluationFault(f"decimal() takes a number or text, not {type(value).__name__}")
    if isinstance(value, float):
        return operators.to_decimal(value)
    try:
        result = Decimal(value.strip() if isinstance(value, str) else value)
    except InvalidOperation:
        raise EvaluationFault("decimal() got text that is not a number") from None
    problem = number_problem(result)
    if problem is not None:
        raise EvaluationFault(f"decimal() of a number too large: {problem}")
    return result


def sandbox_str(value: Any) -> str:
    """str(x) of a number, text, True/False or None (not of lists or mappings)."""
    if value is None or isinstance(value, (bool, str, *_NUMBERS)):
        text = str(value)
        if len(text) > MAX_TEXT_LENGTH:
            raise EvaluationFault(f"text too long (limit {MAX_TEXT_LENGTH})")
        return text
    raise EvaluationFault(f"str() takes a number, text, True/False or None, not {type(value).__name__}")


def sandbox_sum(values: Iterable[Any]) -> Any:
    """sum(list) of numbers."""
    total: Any = 0
    for value in values:
        if not isinstance(value, _NUMBERS):
            raise EvaluationFault(f"sum() adds numbers only, not {type(value).__name__}")
        total = operators.add(total, value)
    return total


def sqrt(x: Any) -> Any:
    return x.sqrt() if isinstance(x, Decimal) else math.sqrt(x)


def exp(x: Any) -> Any:
    return x.exp() if isinstance(x, Decimal) else math.exp(x)


def log(x: Any, base: Any = None) -> Any:
    """Natural logarithm, or log(x, base)."""
    if isinstance(x, Decimal) or isinstance(base, Decimal):
        x = sandbox_decimal(x)
        return x.ln() if base is None else x.ln() / sandbox_decimal(base).ln()
    return math.log(x) if base is None else math.log(x, base)


def log10(x: Any) -> Any:
    return x.log10() if isinstance(x, Decimal) else math.log10(x)


def log2(x: Any) -> Any:
    return x.ln() / Decimal(2).ln() if isinstance(x, Decimal) else math.log2(x)


def floor(x: Any) -> int:
    _check_decimal_magnitude(x)
    return math.floor(x)


def ceil(x: Any) -> int:
    _check_decimal_magnitude(x)
    return math.ceil(x)


def isfinite(x: Any) -> bool:
    return x.is_finite() if isinstance(x, Decimal) else math.isfinite(x)


FUNCTIONS: dict[str, Any] = {
    "min": sandbox_min,
    "max": sandbox_max,
    "abs": abs,
    "round": sandbox_round,
    "int": sandbox_int,
    "float": float,
    "decimal": sandbox_decimal,
    "str": sandbox_str,
    "bool": bool,
    "len": len,
    "sum": sandbox_sum,
    "any": any,
    "all": all,
    "sqrt": sqrt,
    "exp": exp,
    "log": log,
    "log10": log10,
    "log2": log2,
    "floor": floor,
    "ceil": ceil,
    "isfinite": isfinite,
}

CONSTANTS: dict[str, Any] = {"pi": math.pi, "e": math.e, "inf": math.inf}

BUILTINS: dict[str, Any] = {**FUNCTIONS, **CONSTANTS}

BUILTIN_NAMES: frozenset[str] = frozenset(BUILTINS) | {"True", "False", "None"}
