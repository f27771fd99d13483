"""The size every number from outside may have: signal payloads, rule files and expressions.

Decimal arithmetic rounds its results to 28 digits, but the time an operation takes grows
with its operands' digits (a 2000-digit number raised to 1.5 takes about 0.3 s, a 20 000-digit
one half a minute), and a huge exponent turns into a huge text wherever a number is written
out in plain notation. So a number from outside may have at most `MAX_NUMBER_DIGITS`
significant digits and an exponent within ±`MAX_NUMBER_EXPONENT`; with that, the slowest
operation of the expression language takes well under a millisecond.
"""

from __future__ import annotations

from decimal import Decimal

MAX_NUMBER_DIGITS = 100
"""Significant digits of a number (Kraken's prices and volumes have fewer than 30)."""

MAX_NUMBER_EXPONENT = 1000
"""|exponent| of a number in scientific notation: 1E+1000 and 1E-1000 are the extremes."""


_TOO_MANY_DIGITS = 10**MAX_NUMBER_DIGITS


def number_problem(value: Decimal | int) -> str | None:
    """Why `value` is too large to accept, or None. Infinities and NaN are the caller's concern."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        if abs(value) >= _TOO_MANY_DIGITS:
            return f"the number has more than {MAX_NUMBER_DIGITS} digits"
        return None
    if not value.is_finite():
        return None
    digits = len(value.as_tuple().digits)
    if digits > MAX_NUMBER_DIGITS:
        return f"the number has {digits} digits (limit {MAX_NUMBER_DIGITS})"
    exponent = value.adjusted()
    if abs(exponent) > MAX_NUMBER_EXPONENT:
        return f"the number's exponent {exponent} is out of range (limit ±{MAX_NUMBER_EXPONENT})"
    return None


def integer_text_problem(text: str) -> str | None:
    """`number_problem` for the text of an integer, without converting it."""
    digits = len(text.lstrip("+-").lstrip("0")) or 1
    if digits > MAX_NUMBER_DIGITS:
        return f"the number has {digits} digits (limit {MAX_NUMBER_DIGITS})"
    return None
