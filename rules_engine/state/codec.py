"""JSON for stored snapshots, with `Decimal` round-tripping exactly.

A Decimal is stored as `{"$decimal": "0.1"}` and read back as `Decimal("0.1")`. Tuples
come back as lists. Anything else that is not plain JSON is refused with the path to it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

DECIMAL_TAG = "$decimal"


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


def dumps(value: Any, name: str = "value") -> str:
    """Serialise `value`; raises TypeError naming the offending path (`snapshot.rules.x`)."""
    return json.dumps(_encode(value, name), sort_keys=True, separators=(",", ":"))


def loads(text: str) -> Any:
    return json.loads(text, object_hook=_decode)
