"""Signal payload schemas: `schemas/signals/<source>.schema.json`, one per signal source.

The webhook checks each POSTed payload against its source's schema before the engine sees it;
the engine config names the schema (`schema: tradingview`). These functions find and load them.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any

from jsonschema import Draft202012Validator, SchemaError

from rules_engine.resources import schemas_dir
from rules_engine.rules.diagnostics import did_you_mean

SIGNALS_FOLDER = "signals"
_SUFFIX = ".schema.json"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def signal_schema_names() -> list[str]:
    """Names of the payload schemas shipped in `schemas/signals/`, e.g. `["tradingview"]`."""
    folder = schemas_dir() / SIGNALS_FOLDER
    if not folder.is_dir():
        return []
    return sorted(p.name[: -len(_SUFFIX)] for p in folder.glob(f"*{_SUFFIX}"))


@lru_cache(maxsize=32)
def load_signal_schema(name: str) -> dict[str, Any]:
    """The payload schema called `name` (a checked JSON Schema 2020-12 document).

    Raises LookupError when there is no such schema (with a "did you mean" where one is
    close) and ValueError when the file is not a valid schema.
    """
    if not _NAME.fullmatch(name):
        raise LookupError(f"{name!r} is not a signal schema name (lower-case letters, digits, '-' or '_')")
    path = schemas_dir() / SIGNALS_FOLDER / f"{name}{_SUFFIX}"
    if not path.is_file():
        hint = did_you_mean(name, signal_schema_names())
        raise LookupError(f"no payload schema named {name!r} in schemas/signals/" + (f" ({hint})" if hint else ""))
    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
        Draft202012Validator.check_schema(schema)
    except (ValueError, SchemaError) as exc:
        message = exc.message if isinstance(exc, SchemaError) else str(exc)
        raise ValueError(f"signal schema {name!r} is invalid: {message}") from None
    return schema
