"""The rule-file JSON Schema: the rule level written here, each trigger and action type's part
taken from its module (`rules_engine.registry`).

`rules_schema()` (the loader's schema) is built from these in memory; the committed
`schemas/rules.schema.json`, which editors and users reference, is the same document written
out: `make schema` (which calls `main` with the path `schemas/rules.schema.json`) regenerates
it, and a test fails when it differs.

Each type is dispatched on its `type` (an `if`/`then` per type, which the validator runs as one
lookup); its own definition is `$defs/<name>_trigger` or `$defs/<name>`. A type's schema may
refer to the shared definitions below (`#/$defs/duration`, `#/$defs/market`, ...).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rules_engine.registry import action_types, trigger_types
from rules_engine.rules.value_hints import AMOUNT_MESSAGE, FUTURES_PRICE_MESSAGE, LEVEL_MESSAGE, PRICE_MESSAGE

DOCUMENT: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://rules-engine.local/schemas/rules.schema.json",
    "title": "rule file",
    "description": "A rules-engine rule file: rules whose triggers fire guarded actions on Kraken.",
    "type": "object",
    "additionalProperties": False,
    "required": ["version", "rules"],
    "properties": {
        "version": {
            "description": "The rule file format version.",
            "const": 1,
            "errorMessage": "version must be 1",
        },
        "defaults": {"$ref": "#/$defs/defaults"},
        "rules": {
            "description": "The rules in this file.",
            "type": "array",
            "items": {"$ref": "#/$defs/rule"},
        },
    },
}
"""The top level of a rule file."""

SHARED_DEFS: dict[str, dict[str, Any]] = {
    "duration": {
        "description": "A duration: a number and a unit, e.g. 500ms, 30s, 5m, 1h, 1d (or 1h30m).",
        "type": "string",
        "pattern": "^(\\d+(\\.\\d+)?(ms|s|m|h|d))+$",
        "errorMessage": "expected a duration such as 500ms, 30s, 5m, 1h or 1d",
        "patternErrorMessage": "expected a duration such as 500ms, 30s, 5m, 1h or 1d",
    },
    "expression": {
        "description": "An expression, e.g. `price < 65000 and balance('ZUSD') > 100`.",
        "type": "string",
        "minLength": 1,
        "errorMessage": "expected an expression string, e.g. \"price < 65000\"",
    },
    "message": {
        "description": "A message with {name} placeholders, e.g. \"bought {symbol} at {price}\".",
        "type": "string",
        "minLength": 1,
        "errorMessage": "expected a message string",
    },
    "amount": {
        "description": "A non-negative number, a quoted decimal, or an expression starting with `=`.",
        "anyOf": [
            {"type": "number", "minimum": 0},
            {"type": "string", "pattern": "^(=.*\\S.*|[0-9]+(\\.[0-9]+)?)$"},
        ],
        "errorMessage": AMOUNT_MESSAGE,
    },
    "price": {
        "description": (
            "A price: a number, a Kraken relative price string (\"+50\", \"-1.5%\", \"#10\"), or an "
            "expression starting with `=`."
        ),
        "anyOf": [
            {"type": "number", "exclusiveMinimum": 0},
            {"type": "string", "pattern": "^(=.*\\S.*|[0-9]+(\\.[0-9]+)?|[+#-][0-9]+(\\.[0-9]+)?%?)$"},
        ],
        "errorMessage": PRICE_MESSAGE,
    },
    "futures_price": {
        "description": "A price: a positive number, a quoted decimal, or an expression starting with `=`.",
        "anyOf": [
            {"type": "number", "exclusiveMinimum": 0},
            {"type": "string", "pattern": "^(=.*\\S.*|[0-9]+(\\.[0-9]+)?)$"},
        ],
        "errorMessage": FUTURES_PRICE_MESSAGE,
    },
    "level": {
        "description": (
            "A price level: a positive number (quote it to keep every digit: \"0.000012345\")."
        ),
        "anyOf": [
            {"type": "number", "exclusiveMinimum": 0},
            {"type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?$"},
        ],
        "errorMessage": LEVEL_MESSAGE,
    },
    "text_value": {
        "description": "A string, or an expression starting with `=`.",
        "type": "string",
        "minLength": 1,
        "errorMessage": "expected a string",
    },
    "market": {"description": "Which Kraken market: spot or futures.", "enum": ["spot", "futures"]},
    "price_field": {"description": "Which price the trigger watches.", "enum": ["last", "bid", "ask", "mid"]},
    "side": {"description": "Order side.", "enum": ["buy", "sell"]},
    "mode": {
        "description": (
            "What happens when the rule fires while its previous run is still going: `single` drops (and "
            "reports) the new fire, `queued` runs it afterwards."
        ),
        "enum": ["single", "queued"],
    },
    "max_fires": {
        "title": "max_fires",
        "description": "At most `count` fires within any `window`.",
        "type": "object",
        "additionalProperties": False,
        "required": ["count", "window"],
        "properties": {"count": {"type": "integer", "minimum": 1}, "window": {"$ref": "#/$defs/duration"}},
    },
    "defaults": {
        "title": "defaults",
        "description": "Values every rule in this file takes unless it sets its own.",
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "market": {"$ref": "#/$defs/market"},
            "field": {"$ref": "#/$defs/price_field"},
            "timezone": {
                "description": "IANA time zone for cron timers.",
                "type": "string",
                "minLength": 1,
            },
            "cooldown": {"$ref": "#/$defs/duration"},
            "max_fires": {"$ref": "#/$defs/max_fires"},
            "mode": {"$ref": "#/$defs/mode"},
            "priority": {"type": "integer"},
        },
    },
    "rule": {
        "title": "rule",
        "type": "object",
        "additionalProperties": False,
        "required": ["id", "triggers", "actions"],
        "properties": {
            "id": {
                "description": (
                    "Unique across every loaded file; state (cooldowns, fires) follows it across reloads."
                ),
                "type": "string",
                "pattern": "^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$",
                "patternErrorMessage": (
                    "a rule id is 1-64 letters, digits, '-', '_', '.' or ':' and starts with a letter or "
                    "digit"
                ),
            },
            "description": {"type": "string"},
            "enabled": {
                "description": "A disabled rule is loaded and checked but never fires.",
                "type": "boolean",
            },
            "priority": {
                "description": (
                    "Higher runs first when several rules fire on one event; ties run in load order."
                ),
                "type": "integer",
            },
            "triggers": {
                "description": "Any one of these fires the rule.",
                "type": "array",
                "minItems": 1,
                "items": {"$ref": "#/$defs/trigger"},
            },
            "when": {"$ref": "#/$defs/guard"},
            "for": {
                "description": (
                    "The trigger condition and guard must hold this long before the rule fires."
                ),
                "$ref": "#/$defs/duration",
            },
            "cooldown": {
                "description": "After firing, ignore triggers for this long.",
                "$ref": "#/$defs/duration",
            },
            "max_fires": {"$ref": "#/$defs/max_fires"},
            "mode": {"$ref": "#/$defs/mode"},
            "actions": {
                "description": "Run in order when the rule fires.",
                "type": "array",
                "minItems": 1,
                "items": {"$ref": "#/$defs/action"},
            },
        },
    },
    "guard": {
        "description": (
            "A condition: an expression string, or a mapping with one of all:, any: (lists of conditions) "
            "or not: (one condition)."
        ),
        "if": {"type": "string"},
        "then": {"$ref": "#/$defs/expression"},
        "else": {
            "title": "condition",
            "type": "object",
            "additionalProperties": False,
            "minProperties": 1,
            "maxProperties": 1,
            "properties": {
                "all": {
                    "description": "Every condition holds.",
                    "type": "array",
                    "minItems": 1,
                    "items": {"$ref": "#/$defs/guard"},
                },
                "any": {
                    "description": "At least one condition holds.",
                    "type": "array",
                    "minItems": 1,
                    "items": {"$ref": "#/$defs/guard"},
                },
                "not": {"description": "The condition does not hold.", "$ref": "#/$defs/guard"},
            },
            "errorMessage": (
                "a condition is an expression string, or a mapping with exactly one of all:, any: or not:"
            ),
        },
    },
}
"""Definitions the rule level and the types refer to."""


def build_rules_schema() -> dict[str, Any]:
    """The whole rule-file schema, from the rule level and every registered type."""
    defs: dict[str, Any] = dict(SHARED_DEFS)
    triggers, actions = trigger_types(), action_types()
    defs["trigger"] = _dispatch("trigger", [(name, f"{name}_trigger") for name in triggers])
    for name, trigger in triggers.items():
        defs[f"{name}_trigger"] = trigger.schema
        defs.update(trigger.schema_defs)
    defs["action"] = _dispatch("action", [(name, name) for name in actions])
    for name, action in actions.items():
        defs[name] = action.schema
        defs.update(action.schema_defs)
    return {**DOCUMENT, "$defs": defs}


def _dispatch(kind: str, types: list[tuple[str, str]]) -> dict[str, Any]:
    """A mapping with a `type` from `types`, checked against that type's definition."""
    return {
        "title": kind,
        "type": "object",
        "required": ["type"],
        "properties": {"type": {"title": f"{kind} type", "enum": [name for name, _ in types]}},
        "allOf": [
            {"if": {"properties": {"type": {"const": name}}, "required": ["type"]}, "then": {"$ref": f"#/$defs/{ref}"}}
            for name, ref in types
        ],
    }


def render_rules_schema() -> str:
    """The schema as the committed file holds it."""
    return json.dumps(build_rules_schema(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> None:
    """Write the schema to the path given on the command line (`make schema`)."""
    parser = argparse.ArgumentParser(description="Write the rule-file JSON Schema built from the registry.")
    parser.add_argument("path", type=Path, help="where to write it, e.g. schemas/rules.schema.json")
    args = parser.parse_args(argv)
    args.path.write_text(render_rules_schema(), encoding="utf-8")
