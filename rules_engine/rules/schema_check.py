"""The schema layer: check a parsed rule file against the rule-file JSON Schema.

The JSON Schema (2020-12) is the single source of truth for the format. It is built from the
rule level and each trigger and action type's part (`rules_engine.rules.rule_schema`); the
committed `schemas/rules.schema.json` is the same document written out. Every error jsonschema
finds (`iter_errors`, not only the first) is turned into a plain-words `Diagnostic` at the
`file:line:column` of the offending key or value. The schema may carry `errorMessage` (and
`patternErrorMessage` for patterns), the keywords editors such as VS Code's YAML extension also
show; an `enum` whose schema has a `title` (e.g. "trigger type") reads as `unknown trigger type`.
Unknown keys and enum values get a "did you mean" hint.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError, best_match

from rules_engine.rules.diagnostics import Diagnostic, did_you_mean
from rules_engine.rules.rule_schema import build_rules_schema
from rules_engine.rules.value_hints import split_number_hint, value_hint
from rules_engine.rules.yaml_source import JsonPath, SourceDocument

_ANY_OF = ("anyOf", "oneOf")


@lru_cache(maxsize=1)
def rules_schema() -> dict[str, Any]:
    """The rule file schema as a dict, built from the registered types."""
    return build_rules_schema()


@lru_cache(maxsize=1)
def rules_validator() -> Draft202012Validator:
    """The compiled validator, built once per process.

    It checks exactly what the schema says, faster (see `_derive`): each `allOf`
    that only dispatches on `type` (`if: {type: X}, then: S` for every trigger or action type) runs
    as one lookup of the instance's type instead of evaluating every branch's `if`, and local
    references are inlined. The tests compare its findings with a plain validator's.
    """
    schema = rules_schema()
    Draft202012Validator.check_schema(schema)
    return _DispatchingValidator(_derive(schema, schema.get("$defs", {})))


def _dispatch(
    validator: Draft202012Validator, table: dict[str, Any], instance: Any, schema: dict[str, Any]
) -> Iterator[ValidationError]:
    if isinstance(instance, dict) and isinstance(instance.get("type"), str):
        branch = table.get(instance["type"])
        if branch is not None:
            yield from validator.descend(instance, branch)


_DISPATCH = "x-type-dispatch"
_DispatchingValidator = validators.extend(Draft202012Validator, {_DISPATCH: _dispatch})


def _derive(schema: Any, defs: dict[str, Any], expanding: tuple[str, ...] = ()) -> Any:
    """A copy of `schema` that validates the same, faster: each pure type-dispatching `allOf`
    becomes one `x-type-dispatch` lookup, and each local `$ref` (to a definition not already being
    expanded) is replaced by the definition itself, so no reference is resolved while validating."""
    if isinstance(schema, list):
        return [_derive(item, defs, expanding) for item in schema]
    if not isinstance(schema, dict):
        return schema
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith(_LOCAL_DEF) and set(schema) - {"$ref"} <= _ANNOTATIONS:
        name = ref[len(_LOCAL_DEF):]
        if name in defs and name not in expanding:
            return _derive(defs[name], defs, expanding + (name,))
    copy = {}
    for key, value in schema.items():
        if key == "$defs" and not expanding:
            copy[key] = {name: _derive(body, defs, (name,)) for name, body in value.items()}
        else:
            copy[key] = _derive(value, defs, expanding)
    table = _type_dispatch_table(copy.get("allOf"))
    if table is not None:
        del copy["allOf"]
        copy[_DISPATCH] = table
    return copy


_LOCAL_DEF = "#/$defs/"
_ANNOTATIONS = {"description", "$comment", "examples", "default"}


def _type_dispatch_table(branches: Any) -> dict[str, Any] | None:
    if not isinstance(branches, list) or not branches:
        return None
    table = {}
    for branch in branches:
        condition = branch.get("if") if isinstance(branch, dict) and set(branch) == {"if", "then"} else None
        if (not isinstance(condition, dict) or condition.get("required") != ["type"]
                or set(condition) != {"properties", "required"}):
            return None
        type_schema = condition["properties"]
        if set(type_schema) != {"type"} or set(type_schema["type"]) != {"const"}:
            return None
        table[type_schema["type"]["const"]] = branch["then"]
    return table


@dataclass
class SchemaReport:
    """The schema's verdict on one file.

    `rejected` holds the path of every value with a schema error in it: each error's own path
    and every path above it (the rule, the rules list, the document). The builder checks the
    parts the schema accepted even in a rule it rejected (see `BuildContext.fields`).
    `unknown_keys` maps the path of each mapping with unknown keys to those keys: a key missing
    there may have been meant (written `markt: futures`).
    """

    diagnostics: list[Diagnostic]
    rejected: frozenset[JsonPath]
    unknown_keys: dict[JsonPath, frozenset[str]]


def check_schema(document: SourceDocument) -> SchemaReport:
    """Every schema violation in the document, in file order, without duplicates."""
    errors = sorted(rules_validator().iter_errors(document.data), key=_unknown_keys_first)
    rejected: set[JsonPath] = set()
    unknown_keys: dict[JsonPath, frozenset[str]] = {}
    for error in errors:
        path = tuple(error.absolute_path)
        rejected.update(path[:end] for end in range(len(path) + 1))
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            known = error.schema.get("properties", {}) if isinstance(error.schema, dict) else {}
            unknown = {str(key) for key in error.instance if key not in known}
            unknown_keys[path] = unknown_keys.get(path, frozenset()) | unknown
    suggested: dict[JsonPath, set[str]] = {}
    seen: set[tuple[int, int, str]] = set()
    result: list[Diagnostic] = []
    for error in errors:
        for diagnostic in _describe(error, document, suggested):
            key = (diagnostic.line, diagnostic.column, diagnostic.message)
            if key not in seen:
                seen.add(key)
                result.append(diagnostic)
    return SchemaReport(sorted(result, key=Diagnostic.sort_key), frozenset(rejected), unknown_keys)


def _unknown_keys_first(error: ValidationError) -> int:
    return 0 if error.validator == "additionalProperties" else 1


def _describe(
    error: ValidationError, document: SourceDocument, suggested: dict[JsonPath, set[str]]
) -> list[Diagnostic]:
    path: JsonPath = tuple(error.absolute_path)
    schema = error.schema if isinstance(error.schema, dict) else {}
    validator, instance = error.validator, error.instance
    title = schema.get("title")

    if validator == "additionalProperties":
        return list(_unknown_keys(path, schema, instance, document, suggested))
    if validator == "required" or (validator in _ANY_OF and _required_names(error)):
        names = _missing_names(error)
        if names and names & suggested.get(path, set()):
            return []  # already explained by an unknown key that was a misspelling of it
    if validator == "enum" and title:
        candidates = [str(v) for v in _keyword_value(error)]
        code = "unknown-type" if title.endswith(" type") else "invalid-value"
        hint = did_you_mean(str(instance), candidates)
        return [document.diagnostic(path, f'unknown {title} "{instance}"', hint=hint, code=code)]
    custom = schema.get("patternErrorMessage") if validator == "pattern" else None
    custom = custom or schema.get("errorMessage")
    if custom:
        return [document.diagnostic(path, custom, hint=value_hint(schema, instance), code="schema")]
    if validator in _ANY_OF and error.context:
        return _describe(best_match(error.context), document, suggested)
    hint = _hint(error) or value_hint(schema, instance)
    return [document.diagnostic(path, _plain_message(error, path, title), hint=hint, code="schema")]


def _unknown_keys(
    path: JsonPath, schema: dict[str, Any], instance: Any, document: SourceDocument, suggested: dict[JsonPath, set[str]]
) -> Iterable[Diagnostic]:
    known = set(schema.get("properties", {}))
    where = schema.get("title", "this mapping")
    previous = None
    for key in instance:
        if key in known:
            previous = instance[key]
            continue
        hint = did_you_mean(str(key), sorted(known - set(instance)))
        if hint:
            suggested.setdefault(path, set()).add(hint.split('"')[1])
        else:
            hint = split_number_hint(key, previous)
        previous = instance[key]
        yield document.diagnostic(path + (key,), f'unknown key "{key}" in {where}', hint=hint, code="unknown-key",
                                  at_key=True)


def _required_names(error: ValidationError) -> set[str]:
    """For an anyOf/oneOf whose branches only require keys, the keys they name."""
    names: set[str] = set()
    for branch in _keyword_value(error):
        if not isinstance(branch, dict) or set(branch) != {"required"}:
            return set()
        names.update(branch["required"])
    return names


def _missing_names(error: ValidationError) -> set[str]:
    if error.validator == "required":
        present = error.instance if isinstance(error.instance, dict) else {}
        return {name for name in _keyword_value(error) if name not in present}
    return _required_names(error)


def _plain_message(error: ValidationError, path: JsonPath, title: str | None) -> str:
    validator, value, instance = error.validator, _keyword_value(error), _instance(error)
    subject = f'"{path[-1]}"' if path and isinstance(path[-1], str) else (title or "this value")
    if validator == "required":
        missing = [name for name in value if name not in instance]
        keys = ", ".join(f'"{name}"' for name in missing)
        return f"{title or 'this mapping'} is missing the required key{'s' if len(missing) > 1 else ''} {keys}"
    if validator == "type":
        expected = " or ".join(_TYPE_WORDS.get(t, t) for t in ([value] if isinstance(value, str) else value))
        return f"{subject} must be {expected}, not {_describe_value(instance)}"
    if validator == "const":
        return f"{subject} must be {json.dumps(value)}"
    if validator == "enum":
        return f'{subject} must be one of {", ".join(json.dumps(v) for v in value)}, not {_describe_value(instance)}'
    if validator == "minItems":
        return f"{subject} needs at least {value} entr{'y' if value == 1 else 'ies'}"
    if validator == "uniqueItems":
        return f"{subject} lists the same entry twice"
    if validator in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        relation = {"minimum": "at least", "exclusiveMinimum": "more than",
                    "maximum": "at most", "exclusiveMaximum": "less than"}
        return f"{subject} must be {relation[validator]} {value}, not {instance}"
    if validator == "minLength":
        return f"{subject} must not be empty"
    if validator == "pattern":
        return f'{subject} "{instance}" does not match the pattern {value}'
    return error.message if len(error.message) <= 200 else error.message[:197] + "..."


def _hint(error: ValidationError) -> str | None:
    if error.validator == "enum" and isinstance(error.instance, str):
        return did_you_mean(error.instance, [str(v) for v in _keyword_value(error)])
    return None


# jsonschema types these two fields as possibly holding its "unset" marker; an error from
# iter_errors always has both.


def _keyword_value(error: ValidationError) -> Any:
    """The failed keyword's value in the schema (the list of an `enum`, the names of a `required`)."""
    return error.validator_value


def _instance(error: ValidationError) -> Any:
    """The value the failed keyword was checked against."""
    return error.instance


_TYPE_WORDS = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "number": "a number",
    "integer": "a whole number",
    "boolean": "true or false",
    "null": "empty",
}


def _describe_value(value: Any) -> str:
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f'the string "{value}"' if len(value) <= 40 else "a string"
    return f"the number {value}"
