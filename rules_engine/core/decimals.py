"""Decimal to text, the one way the product writes an exact amount.

`plain(Decimal("1E+1"))` is `"10"`, `plain(Decimal("0.10"))` is `"0.10"`: plain notation
(never an exponent), every digit kept (trailing zeros are part of the value the user
wrote, and of what Kraken is sent). The core uses it for the audit form of intents and
trace values; the Kraken request codec uses it for every parameter, so the audit log and
the wire agree digit for digit. Fixed-place formats (Kraken's balance strings, see
`paper.assets.fmt`) and the exact-with-exponent JSON of stored state (`jsoncodec`) do
other jobs and live with their users.
"""

from __future__ import annotations

from decimal import Decimal


def plain(value: Decimal) -> str:
    """`value` in plain notation with every digit: `1E+1` -> `10`, `0.10` -> `0.10`."""
    return format(value, "f")


def plain_or_text(value: Decimal | str) -> str:
    """A Decimal in plain notation; a string (a relative price such as `+5%`) unchanged."""
    return format(value, "f") if isinstance(value, Decimal) else value
