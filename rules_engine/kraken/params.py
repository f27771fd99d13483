"""Request parameters as Kraken is sent them, and the bodies built from them.

Every parameter of every call goes through here once, so there is one wire form:

- `wire_params(params)` turns Python values into wire values: a `Decimal` keeps its exact
  digits in plain notation (`Decimal("0.10")` -> `"0.10"`, `Decimal("1E+1")` -> `"10"`), a
  float is written as its shortest repr, a datetime as RFC 3339, a list comma-joined;
  booleans and integers stay typed (a JSON body sends `true` and `42`, a form body `true`
  and `42`); a mapping is a nested parameter (`close`); `None` means "not sent".
- The parameters are kept in one canonical order, sorted by name, in every body and in
  the audit log (whose JSON is sorted too): Kraken's own AddOrder example is written in
  that order (`nonce=...&ordertype=limit&pair=XBTUSD&price=37500&type=buy&volume=1.25`), and
  sorting makes the body a function of the parameters alone, so the audit record of a
  request and the nonce are enough to rebuild the exact bytes that were signed and sent.
- `form_body` flattens a nested mapping into `close[ordertype]=...` fields; `json_body`
  nests it (`"close": {"ordertype": ...}`). The string built here is both signed and sent.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any, overload
from urllib.parse import quote_plus

from rules_engine.core.decimals import plain
from rules_engine.timestamps import UtcMillis

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded; charset=utf-8"
JSON_CONTENT_TYPE = "application/json"

WireScalar = str | bool | int
WireValue = WireScalar | Mapping[str, WireScalar]
"""A parameter as sent: text, a boolean or an integer, or a nested mapping of those."""


def wire_text(value: Any) -> str:
    """One parameter value as text (a form field, a query value, a JSON string)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return plain(value)
    if isinstance(value, float):
        return plain(Decimal(repr(value)))  # the float's shortest repr, as to_decimal reads it
    if isinstance(value, datetime):
        return rfc3339(value)
    if isinstance(value, (list, tuple)):
        return ",".join(wire_text(v) for v in value)
    return str(value)


@overload
def to_decimal(value: str | int | float | Decimal) -> Decimal: ...
@overload
def to_decimal(value: str | int | float | Decimal | None) -> Decimal | None: ...
def to_decimal(value: str | int | float | Decimal | None) -> Decimal | None:
    """A caller's number as the Decimal it stands for (a float by its shortest repr, so
    `0.1` is `Decimal("0.1")`); None stays None."""
    if value is None or isinstance(value, Decimal):
        return value
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value))


def wire_value(value: Any) -> WireValue:
    """A value as sent: booleans and integers stay typed, everything else is text."""
    if isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, Mapping):
        return {k: _scalar(value[k]) for k in sorted(value) if value[k] is not None}
    return wire_text(value)


def _scalar(value: Any) -> WireScalar:
    return value if isinstance(value, (str, bool, int)) else wire_text(value)


def wire_params(params: Mapping[str, Any]) -> dict[str, WireValue]:
    """The parameters as sent, in canonical (sorted) order; `None` and empty nested
    mappings are dropped (not sent)."""
    out: dict[str, WireValue] = {}
    for key in sorted(params):
        value = params[key]
        if value is None:
            continue
        encoded = wire_value(value)
        if isinstance(encoded, Mapping) and not encoded:
            continue
        out[key] = encoded
    return out


def rfc3339(moment: datetime) -> str:
    """`2024-03-01T12:00:05.123Z` (a naive datetime is refused: its zone is unknown)."""
    if moment.tzinfo is None:
        raise ValueError("deadline must be timezone-aware")
    text = moment.astimezone(UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


_DEADLINE_TEXT = UtcMillis()


def rfc3339_at(timestamp: float) -> str:
    """`rfc3339(datetime.fromtimestamp(timestamp, UTC))`, for an order's deadline on its way
    out, without building a datetime (`rules_engine.timestamps`)."""
    return _DEADLINE_TEXT(timestamp) + "Z"


def epoch_of(moment: datetime | str) -> float:
    """Unix time of a datetime or RFC 3339 text (it must carry a zone or `Z`)."""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError("deadline must be timezone-aware")
    return moment.timestamp()


def form_fields(params: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The `(name, text)` fields of a form body or query string, in canonical order;
    a nested mapping becomes `key[sub]` fields."""
    fields: list[tuple[str, str]] = []
    for key in sorted(params):
        value = params[key]
        if value is None:
            continue
        if isinstance(value, Mapping):
            fields.extend((f"{key}[{sub}]", wire_text(value[sub])) for sub in sorted(value) if value[sub] is not None)
        else:
            fields.append((key, wire_text(value)))
    return fields


_quote_name = lru_cache(maxsize=256)(quote_plus)


_UNQUOTED = re.compile(r"[A-Za-z0-9_.~-]*")  # what `quote_plus` leaves as it is (numbers, ids, words)


def encode_fields(fields: Sequence[tuple[str, str]]) -> str:
    """`a=1&b=x%2By`: what `urllib.parse.urlencode` writes ('+' for a space, `%2B` for '+')."""
    unquoted = _UNQUOTED.fullmatch
    return "&".join(f"{_quote_name(name)}={text if unquoted(text) else quote_plus(text)}" for name, text in fields)


def form_body(params: Mapping[str, Any]) -> str:
    """`close[ordertype]=limit&nonce=1&pair=XBTUSD`: the form body of `params`."""
    return encode_fields(form_fields(params))


_JSON = json.JSONEncoder(sort_keys=True)  # json.dumps' separators: `{"a": 1, "b": "x"}`


def json_body(params: Mapping[str, Any]) -> str:
    """`{"close": {"ordertype": "limit"}, "nonce": 1, "pair": "XBTUSD"}`: the JSON body."""
    return _JSON.encode(wire_params(params))


def ids_text(ids: str | Sequence[str]) -> str:
    return ids if isinstance(ids, str) else ",".join(ids)


def new_cl_ord_id() -> str:
    """A fresh client order id (a UUID, one of the forms Kraken accepts)."""
    return str(uuid.uuid4())
