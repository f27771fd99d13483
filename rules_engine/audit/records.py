"""The audit record format: canonical JSON, the hash chain and record checks.

A record is one line of canonical JSON (sorted keys, no spaces, ASCII only):

    {"data":{...},"hash":H,"kind":"decision","mode":"live","prev":P,"rule_hash":R,
     "rule_id":"buy-dip","seq":42,"time":1714557600.123}

`hash` is the SHA-256 (hex) of the canonical JSON of the record without `hash`; `prev`
is the `hash` of the record before it (`GENESIS` for `seq` 1). `seq` counts from 1 with
no gaps, so an edited, deleted, reordered or inserted record breaks the chain.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping
from decimal import Decimal
from pathlib import PurePath
from typing import Any

import orjson

from rules_engine.core.decimals import plain

GENESIS = "0" * 64
"""`prev` of the first record of a log."""

FIELDS = ("data", "hash", "kind", "mode", "prev", "rule_hash", "rule_id", "seq", "time")

KIND_PATTERN = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def to_jsonable(value: Any) -> Any:
    """Convert `value` to plain JSON types: Decimal -> plain text (`1E+1` -> "10"), Enum -> its value, dataclass ->
    dict, tuple/set -> list, bytes -> UTF-8 text, datetime -> ISO text, non-finite float ->
    str, exception -> "Type: message", mapping keys -> str; anything else -> str(value)."""
    kind = type(value)  # the exact common types first: one audit record is built per trace record
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if kind is Decimal:
        return plain(value)
    if kind is dict:
        return {k if type(k) is str else str(k): to_jsonable(v) for k, v in value.items()}
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Decimal):
        return plain(value)
    if isinstance(value, enum.Enum):
        return to_jsonable(value.value)
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((to_jsonable(v) for v in value), key=canonical_json)
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", errors="replace")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, BaseException):
        return f"{type(value).__name__}: {value}"
    return str(value)


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return plain(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


# One encoder for every call (json.dumps with options builds a new one each time).
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False,
                              default=_default)


def canonical_json(value: Any) -> str:
    """Sorted keys, compact separators, ASCII only; Decimal as a string.

    A dict or list of plain values (the data of nearly every record) is written by orjson,
    about ten times faster, when that gives the very same text: only str, int, bool, None and
    floats in [1e-4, 1e16) or zero (there both write the shortest round-trip repr), and only if
    the result is ASCII without a backslash or DEL (nothing either encoder escapes). Anything
    else, or anything orjson refuses (integers beyond 64 bits, non-str keys), goes through the
    standard encoder, the definition of the format."""
    if _FAST and (type(value) is dict or type(value) is list) and _orjson_plain(value):
        try:
            out = orjson.dumps(value, option=_ORJSON_OPTIONS)
        except orjson.JSONEncodeError:
            pass
        else:
            if out.isascii() and b"\\" not in out and b"\x7f" not in out:
                return out.decode("ascii")
    return _CANONICAL.encode(value)


_ORJSON_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_SUBCLASS | orjson.OPT_PASSTHROUGH_DATACLASS \
    | orjson.OPT_PASSTHROUGH_DATETIME


def _orjson_plain(value: dict[str, Any] | list[Any] | tuple[Any, ...]) -> bool:
    """Whether every value inside `value` is one orjson writes as the standard encoder does
    (see `canonical_json`); containers are exact dicts, lists and tuples."""
    items: Iterable[Any] = value.values() if type(value) is dict else value
    for item in items:
        kind = type(item)
        if kind is str or kind is int or kind is bool or item is None:
            continue
        if kind is float:
            if item == 0.0 or 1e-4 <= abs(item) < 1e16:  # NaN and infinities fail both tests
                continue
            return False
        if (kind is not dict and kind is not list and kind is not tuple) or not _orjson_plain(item):
            return False
    return True


def _orjson_agrees() -> bool:
    """The installed orjson writes floats of the fast path's range as `repr` does (checked
    once at import on a spread of values, so that a change in orjson cannot alter the format)."""
    samples: list[Any] = [0.0, -0.0, 1e-4, 0.00010000000000000002, 0.1, 1.0, 100.0, 123.456, 69500.25,
                          1796451891.926297, 9999999999999998.0, -2.5e-4, 1e15 / 3]
    samples += [(1 + n / 97) * 10.0 ** e for n in range(0, 97, 7) for e in range(-4, 16)]
    return all(orjson.dumps(v).decode() == repr(v) for v in samples)


_FAST = _orjson_agrees()


def record_hash(record: Mapping[str, Any]) -> str:
    """SHA-256 hex of the canonical JSON of `record` without its `hash` field."""
    body = {k: v for k, v in record.items() if k != "hash"}
    return hashlib.sha256(canonical_json(body).encode("ascii")).hexdigest()


class RecordError(ValueError):
    """A line is not a well-formed audit record."""


def parse_record(line: bytes | str) -> dict[str, Any]:
    """Parse one line (without its newline) and check its shape and its own hash.

    Raises RecordError saying what is wrong. The chain (`prev`, `seq`) is checked by the
    caller, who knows the record before.
    """
    try:
        record = json.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RecordError(f"not valid JSON ({exc})") from None
    if not isinstance(record, dict):
        raise RecordError("not a JSON object")
    keys = set(record)
    if keys != set(FIELDS):
        missing = sorted(set(FIELDS) - keys)
        extra = sorted(keys - set(FIELDS))
        raise RecordError(f"wrong fields (missing {missing}, unexpected {extra})")
    seq = record["seq"]
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
        raise RecordError(f"seq {seq!r} is not a positive integer")
    if not isinstance(record["time"], (int, float)) or isinstance(record["time"], bool):
        raise RecordError("time is not a number")
    if not isinstance(record["kind"], str) or not KIND_PATTERN.match(record["kind"]):
        raise RecordError(f"kind {record['kind']!r} is not a valid kind")
    if not isinstance(record["data"], dict):
        raise RecordError("data is not an object")
    for name in ("prev", "hash"):
        if not isinstance(record[name], str) or not _HEX64.match(record[name]):
            raise RecordError(f"{name} is not a SHA-256 hex digest")
    expected = record_hash(record)
    if expected != record["hash"]:
        raise RecordError(f"hash mismatch: the record was altered (content hashes to {expected[:16]}...)")
    return record
