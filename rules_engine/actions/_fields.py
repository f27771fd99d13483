"""Builder helpers the action types share: reading value fields and checked fields."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any

from rules_engine.rules.context import BuildContext
from rules_engine.rules.yaml_source import JsonPath

Names = Collection[str]


def values(ctx: BuildContext, path: JsonPath, raw: Mapping[str, Any], names: Names, keys: tuple[str, ...],
           numeric: bool = True) -> dict[str, Any]:
    """The given `keys` as values: literals (Decimals with `numeric`) or `=expressions` over `names`."""
    return {key: ctx.value(path + (key,), raw[key], names, numeric=numeric) for key in keys if key in raw}


def given(ctx: BuildContext, path: JsonPath, raw: Mapping[str, Any], key: str,
          check: Callable[[BuildContext, JsonPath, Any], Any]) -> Any:
    """`check` applied to the value of `key`; None when the field is not given."""
    return check(ctx, path + (key,), raw[key]) if key in raw else None
