"""Bounded arithmetic and comparison for the sandbox.

Every operator that could build a huge value checks the size of its result before
computing it. Where a `Decimal` meets a `float`, the float is converted to a `Decimal`
through its shortest text form (`0.1` -> `Decimal("0.1")`), so money arithmetic stays
decimal instead of failing with a TypeError.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from .errors import EvaluationFault
from .limits import MAX_DECIMAL_POWER_BASE_DIGITS, MAX_INT_BITS, MAX_ITEMS, MAX_TEXT_LENGTH

_BIG_DECIMAL_BASE = 10**MAX_DECIMAL_POWER_BASE_DIGITS

_SEQUENCES = (str, list, tuple)


def to_decimal(value: float) -> Decimal:
    """A float as the Decimal of its shortest round-tripping text."""
    return Decimal(repr(value))


def coerce(a: Any, b: Any) -> tuple[Any, Any]:
    """Make a Decimal/float pair both Decimal; leave every other pair alone."""
    if type(a) is type(b):
        return a, b
    if isinstance(a, Decimal):
        if isinstance(b, float):
            return a, to_decimal(b)
    elif isinstance(a, float) and isinstance(b, Decimal):
        return to_decimal(a), b
    return a, b


def _is_int(value: Any) -> bool:
    return isinstance(value, int)


def _too_big(bits: int) -> EvaluationFault:
    return EvaluationFault(f"result too large: about {bits} bits (limit {MAX_INT_BITS})")


def add(a: Any, b: Any) -> Any:
    if isinstance(a, _SEQUENCES) and isinstance(b, _SEQUENCES):
        limit = MAX_TEXT_LENGTH if isinstance(a, str) else MAX_ITEMS
        if len(a) + len(b) > limit:
            raise EvaluationFault(f"result too long: {len(a) + len(b)} items (limit {limit})")
    a, b = coerce(a, b)
    return a + b


def sub(a: Any, b: Any) -> Any:
    a, b = coerce(a, b)
    return a - b


def mul(a: Any, b: Any) -> Any:
    if isinstance(a, _SEQUENCES) or isinstance(b, _SEQUENCES):
        sequence, count = (a, b) if isinstance(a, _SEQUENCES) else (b, a)
        if not isinstance(sequence, str):
            raise EvaluationFault(f"repeating a {type(sequence).__name__} with * is not allowed")
        if _is_int(count) and len(sequence) * count > MAX_TEXT_LENGTH:
            raise EvaluationFault(
                f"text too long: {len(sequence)} * {count} characters (limit {MAX_TEXT_LENGTH})"
            )
        return sequence * count
    if _is_int(a) and _is_int(b):
        bits = a.bit_length() + b.bit_length()
        if bits > MAX_INT_BITS:
            raise _too_big(bits)
    a, b = coerce(a, b)
    return a * b


def truediv(a: Any, b: Any) -> Any:
    a, b = coerce(a, b)
    return a / b


def floordiv(a: Any, b: Any) -> Any:
    a, b = coerce(a, b)
    return a // b


def mod(a: Any, b: Any) -> Any:
    if isinstance(a, (str, bytes)):
        raise EvaluationFault("'%' formatting of text is not allowed")
    a, b = coerce(a, b)
    return a % b


def _power_bits(base: int, exponent: int) -> int:
    """The length in bits of base ** exponent (|base| > 1, exponent > 0), within one bit:
    the result has floor(exponent * log2|base|) + 1 bits (in integers: the exponent may be huge)."""
    return ((exponent * int(math.log2(abs(base)) * 2**32)) >> 32) + 1


def power(a: Any, b: Any) -> Any:
    if _is_int(a) and _is_int(b) and b > 0 and abs(a) > 1:
        bits = _power_bits(a, b)
        if bits > MAX_INT_BITS + 1:  # a float estimate; the exact length is checked below
            raise _too_big(bits)
        result = a**b
        if result.bit_length() > MAX_INT_BITS:
            raise _too_big(result.bit_length())
        return result
    if _is_int(a) and isinstance(b, Decimal) and abs(a) >= _BIG_DECIMAL_BASE:
        # Decimal's power takes time that grows with the digits of its operands
        raise EvaluationFault(
            f"an integer of more than {MAX_DECIMAL_POWER_BASE_DIGITS} digits cannot be raised to a decimal power"
        )
    a, b = coerce(a, b)
    result = a**b
    if isinstance(result, complex):
        raise EvaluationFault("result is not a real number")
    return result


def lshift(a: Any, b: Any) -> Any:
    if _is_int(a) and _is_int(b) and b > 0 and a:
        bits = a.bit_length() + b
        if bits > MAX_INT_BITS:
            raise _too_big(bits)
    return a << b


def _compare(op: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    def compare(a: Any, b: Any) -> Any:
        if type(a) is not type(b):
            a, b = coerce(a, b)
        return op(a, b)

    return compare


BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: add,
    ast.Sub: sub,
    ast.Mult: mul,
    ast.Div: truediv,
    ast.FloorDiv: floordiv,
    ast.Mod: mod,
    ast.Pow: power,
    ast.LShift: lshift,
    ast.RShift: operator.rshift,
    ast.BitAnd: operator.and_,
    ast.BitOr: operator.or_,
    ast.BitXor: operator.xor,
}

COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Eq: _compare(operator.eq),
    ast.NotEq: _compare(operator.ne),
    ast.Lt: _compare(operator.lt),
    ast.LtE: _compare(operator.le),
    ast.Gt: _compare(operator.gt),
    ast.GtE: _compare(operator.ge),
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
    ast.Is: operator.is_,
    ast.IsNot: operator.is_not,
}
