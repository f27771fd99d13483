"""Signal payload schemas: `<name>.schema.json`, one per signal source.

The webhook checks each POSTed payload against its source's schema before the engine sees it;
the engine config names the schema (`schema: tradingview`), and `validate` checks the fields
rules read against the schema named after their source. These functions find and load them:
first in the folders named by `RULES_ENGINE_SIGNAL_SCHEMAS` (your own, kept beside your rules:
no need to add them to the installed package), then in the package's `schemas/signals/`.
"""

from __future__ import annotations

import json
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, SchemaError

from rules_engine.resources import schemas_dir
from rules_engine.rules.diagnostics import did_you_mean

SIGNALS_FOLDER = "signals"
SCHEMAS_ENV = "RULES_ENGINE_SIGNAL_SCHEMAS"
"""Folders (separated by `os.pathsep`, `:` on Linux) searched for payload schemas before the package's."""
_SUFFIX = ".schema.json"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def signal_schema_folders() -> tuple[Path, ...]:
    """Where payload schemas are looked for, first match first: the folders named by
    `RULES_ENGINE_SIGNAL_SCHEMAS`, then the package's `schemas/signals/`."""
    own = tuple(Path(entry).expanduser().absolute() for entry in os.environ.get(SCHEMAS_ENV, "").split(os.pathsep)
                if entry.strip())
    return (*own, schemas_dir() / SIGNALS_FOLDER)


def signal_schema_names() -> list[str]:
    """Names of the payload schemas found (see `signal_schema_folders`), e.g. `["tradingview"]`."""
    names = {p.name[: -len(_SUFFIX)] for folder in signal_schema_folders() if folder.is_dir()
             for p in folder.glob(f"*{_SUFFIX}")}
    return sorted(name for name in names if _NAME.fullmatch(name))


def load_signal_schema(name: str) -> dict[str, Any]:
    """The payload schema called `name` (a checked JSON Schema 2020-12 document), from the
    first folder of `signal_schema_folders` that has it.

    Raises LookupError when there is no such schema (with where it looked, and a "did you mean"
    where one is close) and ValueError when the file is not a valid schema.
    """
    if not _NAME.fullmatch(name):
        raise LookupError(f"{name!r} is not a signal schema name (lower-case letters, digits, '-' or '_')")
    return _load(name, signal_schema_folders())


@lru_cache(maxsize=32)
def _load(name: str, folders: tuple[Path, ...]) -> dict[str, Any]:
    path = next((p for p in (folder / f"{name}{_SUFFIX}" for folder in folders) if p.is_file()), None)
    if path is None:
        hint = did_you_mean(name, signal_schema_names())
        own = [f"{folder}{'' if folder.is_dir() else ' (not a folder)'}" for folder in folders[:-1]]
        where = f"{', '.join(own)} ({SCHEMAS_ENV}) or schemas/signals/" if own else "schemas/signals/"
        raise LookupError(f"no payload schema named {name!r} in {where}" + (f" ({hint})" if hint else ""))
    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
        Draft202012Validator.check_schema(schema)
    except (ValueError, SchemaError) as exc:
        message = exc.message if isinstance(exc, SchemaError) else str(exc)
        raise ValueError(f"signal schema {name!r} is invalid: {message}") from None
    return schema
