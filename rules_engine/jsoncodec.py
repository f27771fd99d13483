"""JSON with `Decimal` round-tripping exactly: the one codec for persisted state.

`dumps` takes plain data (dicts with string keys, lists, tuples, str, int, float, bool,
None and `Decimal`) and writes a Decimal as `{"$decimal": "0.1"}`; `loads` reads that back
as `Decimal("0.1")`, exponent included. Tuples come back as lists. Anything else, and the
reserved key `"$decimal"` in a mapping, is refused with the path to it, so what `loads`
returns is always what was given to `dumps`.

Standard library and orjson only (no I/O), so any part of the engine (the pure core's tests,
the state store) can use it. Plain data is written by orjson (a state commit on the way to an
order writes three of these: about 4 µs each instead of 18); anything it would write
differently from this contract (NaN or infinite floats, which it writes as null; enums, UUIDs,
subclasses; the reserved key; integers beyond 64 bits; lone surrogates) goes through the
standard library's encoder as before. Floats and non-ASCII text may be spelled differently
from the standard encoder's (`1e-7` for `1e-07`, UTF-8 for `\u00e9`); `loads` reads back the
same values.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import orjson

DECIMAL_TAG = "$decimal"


class _Unusual(Exception):
    """Internal: `_plain` met something it does not take; `_encode` decides."""


def _plain(value: Any) -> Any:
    """`_encode` for the common exact types, without building paths (raises `_Unusual`)."""
    kind = type(value)
    if kind is str or kind is int or kind is float or kind is bool or value is None:
        return value
    if kind is Decimal:
        return {DECIMAL_TAG: str(value)}
    if kind is dict:
        out = {}
        for key, item in value.items():
            if type(key) is not str or key == DECIMAL_TAG:
                raise _Unusual
            out[key] = _plain(item)
        return out
    if kind is list or kind is tuple:
        return [_plain(item) for item in value]
    raise _Unusual


_LEAVES = frozenset((str, int, bool, type(None), Decimal))


def _check(value: Any) -> None:
    """Raise `_Unusual` unless `value` is dicts (without the reserved key), lists and tuples
    of the exact types orjson writes as this codec does: str, int, bool, None, finite float,
    and Decimal (through `_decimal`). Key types and integer range are orjson's to refuse."""
    kind = type(value)
    if kind is dict:
        if DECIMAL_TAG in value:
            raise _Unusual
        items: Any = value.values()
    elif kind is list or kind is tuple:
        items = value
    else:
        raise _Unusual
    for item in items:
        item_kind = type(item)
        if item_kind in _LEAVES:
            continue
        if item_kind is float:
            if item - item != 0:  # NaN or infinite
                raise _Unusual
            continue
        _check(item)


def _decimal(value: Any) -> Any:
    if type(value) is Decimal:
        return {DECIMAL_TAG: str(value)}
    raise TypeError  # `_check` lets nothing else through


_ORJSON_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_SUBCLASS | orjson.OPT_PASSTHROUGH_DATACLASS \
    | orjson.OPT_PASSTHROUGH_DATETIME


def _encode(value: Any, where: str) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Decimal):
        return {DECIMAL_TAG: str(value)}
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{where}: key {key!r} is not a string")
            if key == DECIMAL_TAG:
                raise TypeError(f"{where}: the key {DECIMAL_TAG!r} is reserved")
            out[key] = _encode(item, f"{where}.{key}")
        return out
    if isinstance(value, (list, tuple)):
        return [_encode(item, f"{where}[{i}]") for i, item in enumerate(value)]
    raise TypeError(f"{where}: {type(value).__name__} is not JSON-serialisable")


def _decode(obj: dict[str, Any]) -> Any:
    if len(obj) == 1 and DECIMAL_TAG in obj:
        return Decimal(obj[DECIMAL_TAG])
    return obj


_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"))  # one for every call


def dumps(value: Any, name: str = "value") -> str:
    """Serialise `value`; raises TypeError naming the offending path (`snapshot.rules.x`)."""
    try:
        _check(value)
        return orjson.dumps(value, default=_decimal, option=_ORJSON_OPTIONS).decode()
    except (_Unusual, TypeError):  # orjson.JSONEncodeError is a TypeError
        pass
    try:
        encoded = _plain(value)
    except _Unusual:  # subclasses, other mappings, or an error to report with its path
        encoded = _encode(value, name)
    return _ENCODER.encode(encoded)


_DECODER = json.JSONDecoder(object_hook=_decode)  # one for every call, as the encoder


def loads(text: str) -> Any:
    """Parse what `dumps` wrote, with Decimals back as `Decimal`."""
    return _DECODER.decode(text)
