"""Request parameters as Kraken wants them on the wire, and signed bodies.

Values keep their exact decimal text (`Decimal("0.10")` -> `0.10`, never `1E-1`), booleans
are `true`/`false`, lists are comma-joined, and `None` means "not sent". A Spot body is
form-encoded (`close[ordertype]=...`) or JSON (`"close": {"ordertype": ...}`); the exact
string built here is both signed and sent.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded; charset=utf-8"
JSON_CONTENT_TYPE = "application/json"


def wire_text(value: Any) -> str:
    """One parameter value as Kraken expects it in a form body or query string."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, float):
        return format(Decimal(repr(value)), "f")
    if isinstance(value, datetime):
        return rfc3339(value)
    if isinstance(value, (list, tuple)):
        return ",".join(wire_text(v) for v in value)
    return str(value)


def _json_value(value: Any) -> Any:
    if isinstance(value, (bool, int)):
        return value
    if isinstance(value, Mapping):
        return {k: _json_value(v) for k, v in value.items() if v is not None}
    return wire_text(value)


def rfc3339(moment: datetime) -> str:
    """`2024-03-01T12:00:05.123Z` (a naive datetime is refused: its zone is unknown)."""
    if moment.tzinfo is None:
        raise ValueError("deadline must be timezone-aware")
    text = moment.astimezone(UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def epoch_of(moment: datetime | str) -> float:
    """Unix time of a datetime or RFC 3339 text (it must carry a zone or `Z`)."""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError("deadline must be timezone-aware")
    return moment.timestamp()


def compact(params: Mapping[str, Any]) -> dict[str, Any]:
    """Drop parameters that are None (not sent)."""
    return {k: v for k, v in params.items() if v is not None}


def form_body(params: Mapping[str, Any]) -> str:
    """`a=1&close[ordertype]=limit`: nested mappings become `key[sub]` fields."""
    pairs: list[tuple[str, str]] = []
    for key, value in params.items():
        if isinstance(value, Mapping):
            pairs.extend((f"{key}[{sub}]", wire_text(v)) for sub, v in value.items() if v is not None)
        elif value is not None:
            pairs.append((key, wire_text(value)))
    return urlencode(pairs)


def json_body(params: Mapping[str, Any]) -> str:
    return json.dumps({k: _json_value(v) for k, v in params.items() if v is not None})


def query_params(params: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Public GET parameters, in order, as text."""
    return [(k, wire_text(v)) for k, v in params.items() if v is not None]


def ids_text(ids: str | Sequence[str]) -> str:
    return ids if isinstance(ids, str) else ",".join(ids)


def new_cl_ord_id() -> str:
    """A fresh client order id (a UUID, one of the forms Kraken accepts)."""
    return str(uuid.uuid4())
