"""What a value the schema refused was probably meant to be, for the ways people write numbers
and durations: `"70,000"` (a thousands separator), `"0,5"` (a decimal comma), `every: 30` (no
unit), `cooldown: 1 hour` (a unit in words), and `{crosses_above: 70,000}`, where the comma
ends the entry and leaves a key `000`.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

_GROUPED = re.compile(r"^([+#-]?)([0-9]{1,3}(?:,[0-9]{3})+)((?:\.[0-9]+)?%?)$")
_DECIMAL_COMMA = re.compile(r"^([+#-]?[0-9]+),([0-9]+%?)$")
_WORDED_DURATION = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]+)\s*$")
_UNITS = {
    "ms": "ms", "msec": "ms", "millisecond": "ms", "milliseconds": "ms",
    "s": "s", "sec": "s", "secs": "s", "second": "s", "seconds": "s",
    "m": "m", "min": "m", "mins": "m", "minute": "m", "minutes": "m",
    "h": "h", "hr": "h", "hrs": "h", "hour": "h", "hours": "h",
    "d": "d", "day": "d", "days": "d",
}
DURATION_MESSAGE = "expected a duration such as 500ms, 30s, 5m, 1h or 1d"
AMOUNT_MESSAGE = 'expected a non-negative number, a quoted decimal such as "0.5", or an expression starting with ='
PRICE_MESSAGE = ('expected a positive number, a relative price such as "+50" or "-1.5%", or an expression '
                 "starting with =")
FUTURES_PRICE_MESSAGE = 'expected a positive number, a quoted decimal such as "0.5", or an expression starting with ='
LEVEL_MESSAGE = "expected a positive number"
_PERCENT = re.compile(r"^([0-9]+(?:\.[0-9]+)?)\s*%$")
_RELATIVE = re.compile(r"^[+#-][0-9]+(?:\.[0-9]+)?%?$")


def value_hint(schema: dict[str, Any], instance: Any) -> str | None:
    """A hint for `instance`, which the (sub)schema `schema` refused, or None."""
    if schema.get("errorMessage") == DURATION_MESSAGE or schema.get("patternErrorMessage") == DURATION_MESSAGE:
        return _duration_hint(instance)
    if schema.get("title") == "rule file" and isinstance(instance, list):
        return "a rule file starts with version: 1 and rules:, and its rules are the list under rules:"
    if schema.get("title") == "max_fires" and isinstance(instance, int) and not isinstance(instance, bool):
        return f"write max_fires: {{count: {instance}, window: 1d}}: at most {instance} fires within any day"
    if isinstance(instance, str) and _takes_number(schema):
        return _percent_hint(schema.get("errorMessage"), instance.strip()) or number_hint(instance.strip())
    return None


def _percent_hint(message: Any, text: str) -> str | None:
    """For a percent (or a relative price) where the field takes an amount, a level or a price."""
    percent = _PERCENT.match(text)
    if message == PRICE_MESSAGE and percent:
        number = percent.group(1)
        return f'a relative price starts with + or -: "+{number}%" above the last price, "-{number}%" below it'
    if message == FUTURES_PRICE_MESSAGE and (percent or _RELATIVE.match(text)):
        return "Kraken Futures takes no relative prices: compute the price, e.g. \"=price * 0.99\""
    if message == LEVEL_MESSAGE and text.startswith("="):
        return "a level is a fixed number, not an expression: compare a computed level in when: instead"
    if percent and message == LEVEL_MESSAGE:
        return "a level is a price, not a percent of one: write the price; a percent is for rearm: and spread levels"
    if not percent or message != AMOUNT_MESSAGE:
        return None
    fraction = format((Decimal(percent.group(1)) / 100).normalize(), "f")
    return (f"{text} is not a number: write the amount, or compute it with an expression, e.g. "
            f"\"=balance('ZUSD') * {fraction} / price\" for {text} of the USD balance")


def _takes_number(schema: dict[str, Any]) -> bool:
    branches = [branch for branch in schema.get("anyOf", ()) if isinstance(branch, dict)]
    kinds = [schema.get("type")] + [branch.get("type") for branch in branches]
    return "number" in kinds or "integer" in kinds


_CURRENCY = re.compile(r"^[$€£]\s*|\s*(?:[$€£]|USD|EUR|GBP|USDT|USDC)$", re.IGNORECASE)
_NUMBER = re.compile(r"^[+#-]?[0-9]+(\.[0-9]+)?%?$")
_SPACED = re.compile(r"^[0-9]{1,3}(?: [0-9]{3})+(?:\.[0-9]+)?$")
_THOUSANDS = re.compile(r"^([0-9]+(?:\.[0-9]+)?)\s*[kK]$")
_EXPONENT = re.compile(r"^[0-9]+(?:\.[0-9]+)?[eE][+-]?[0-9]{1,3}$")


def number_hint(text: str) -> str | None:
    """`70,000` -> write 70000; `0,5` -> write 0.5; `$70000` -> write 70000."""
    reasons = []
    bare = _CURRENCY.sub("", text).strip()
    if bare != text:
        reasons.append("no currency")
    grouped, decimal_comma = _GROUPED.match(bare), _DECIMAL_COMMA.match(bare)
    spaced, thousands, exponent = _SPACED.match(bare), _THOUSANDS.match(bare), _EXPONENT.match(bare)
    if spaced:
        bare = bare.replace(" ", "")
        reasons.append("no spaces")
    elif thousands:
        bare = format(Decimal(thousands.group(1)) * 1000, "f")
        reasons.append("no k for thousands")
    elif exponent:
        bare = format(Decimal(bare).normalize(), "f")
        reasons.append("no exponent")
    elif grouped:
        bare = "".join(grouped.groups()).replace(",", "")
        reasons.append("no thousands separator")
    elif decimal_comma:
        bare = ".".join(decimal_comma.groups())
        reasons.append("a decimal point, not a comma")
    if not reasons or not _NUMBER.match(bare):
        return None
    return f"write {bare}: a number takes " + " and ".join(reasons)


def split_number_hint(key: Any, previous: Any) -> str | None:
    """For an unknown key such as `000` after `crosses_above: 70` in `{...}`: the comma split a number."""
    number = isinstance(previous, (int, Decimal)) and not isinstance(previous, bool)
    if number and isinstance(key, str) and key.isdigit():
        return f"the comma in {previous},{key} ends the entry inside {{...}}: write {previous}{key}"
    return None


def _duration_hint(instance: Any) -> str | None:
    if isinstance(instance, (int, Decimal)) and not isinstance(instance, bool):
        return f'a duration needs its unit: write "{instance}s" for seconds or "{instance}m" for minutes'
    if isinstance(instance, str):
        worded = _WORDED_DURATION.match(instance)
        if worded and worded.group(2).lower() in _UNITS:
            return f'did you mean "{worded.group(1)}{_UNITS[worded.group(2).lower()]}"?'
    return None
