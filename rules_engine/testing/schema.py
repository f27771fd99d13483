"""The test-file schema (`schemas/rule-tests.schema.json`) and its errors at `file:line:column`.

The schema refers to the engine config schema for `limits` (the config's `risk:` section),
so both are registered with the validator. Every error jsonschema finds is reported, pinned
through the YAML node tree to where it was written; a schema node's `errorMessage` (the
keyword the rule schema and editors use) replaces jsonschema's wording.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource

from rules_engine.resources import schema_path
from rules_engine.rules.diagnostics import Diagnostic, did_you_mean
from rules_engine.rules.value_hints import value_hint
from rules_engine.rules.yaml_source import JsonPath, SourceDocument

TESTS_SCHEMA = "rule-tests.schema.json"
_INPUTS = ("prices", "tick", "signal", "timer", "kill_switch")
_REFERENCED = ("engine.schema.json",)


@lru_cache(maxsize=1)
def tests_validator() -> Draft202012Validator:
    """The compiled validator for rule test files."""
    schema = json.loads(schema_path(TESTS_SCHEMA).read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    resources = []
    for name in _REFERENCED:
        contents = json.loads(schema_path(name).read_text(encoding="utf-8"))
        resources.append((contents["$id"], Resource.from_contents(contents)))
    return Draft202012Validator(schema, registry=Registry().with_resources(resources))


def check_test_schema(document: SourceDocument) -> tuple[list[Diagnostic], frozenset[JsonPath]]:
    """Every schema violation in a parsed test file, in file order, without duplicates; and the
    paths of the values with an error in them (each error's path and every path above it), so the
    later checks can skip exactly those and check the rest in the same run."""
    found: dict[tuple[int, int, str], Diagnostic] = {}
    rejected: set[JsonPath] = set()
    errors = list(tests_validator().iter_errors(document.data))
    misspelled = _misspelled_keys(errors)
    for error in errors:
        path = tuple(error.absolute_path)
        rejected.update(path[:end] for end in range(len(path) + 1))
        if error.validator == "required" and _missing(error) <= misspelled.get(path, set()):
            continue  # `paylod:` is reported as an unknown key meant to be "payload"; not also as missing
        for diagnostic in _describe(error, document):
            found.setdefault((diagnostic.line, diagnostic.column, diagnostic.message), diagnostic)
    return sorted(found.values(), key=Diagnostic.sort_key), frozenset(rejected)


def _misspelled_keys(errors: list[ValidationError]) -> dict[JsonPath, set[str]]:
    """For each mapping with unknown keys, the known keys they are close to."""
    meant: dict[JsonPath, set[str]] = {}
    for error in errors:
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            known = sorted(error.schema.get("properties", {})) if isinstance(error.schema, dict) else []
            for key in error.instance:
                hint = did_you_mean(str(key), known) if key not in known else None
                if hint:
                    meant.setdefault(tuple(error.absolute_path), set()).add(hint.split('"')[1])
    return meant


def _missing(error: ValidationError) -> set[str]:
    names: Any = error.validator_value
    present = error.instance if isinstance(error.instance, dict) else {}
    return {name for name in names if name not in present}


def _describe(error: ValidationError, document: SourceDocument) -> Iterator[Diagnostic]:
    path = tuple(error.absolute_path)
    schema = error.schema if isinstance(error.schema, dict) else {}
    # The failing part of the document and the keyword's value in the schema: untyped JSON
    # (the stubs' `Unset` is only the constructor's default; iter_errors always sets both).
    instance: Any = error.instance
    value: Any = error.validator_value
    if error.validator == "additionalProperties":
        known = sorted(schema.get("properties", {}))
        where = schema.get("title", "this mapping")
        for key in instance:
            if key not in known:
                hint = did_you_mean(str(key), known)
                if key == "at" and path and path[-1] in _INPUTS:  # {tick: {symbol: X, last: 1, at: 1m}}
                    hint = f"at goes beside {path[-1]}: in the input, as in - {{at: 1m, {path[-1]}: {{...}}}}"
                yield _at(document, path + (key,), f'unknown key "{key}" in {where}', hint, at_key=True)
        return
    if error.validator == "enum" and schema.get("title"):
        options = [str(v) for v in value]
        yield _at(document, path, f'unknown {schema["title"]} "{instance}"', did_you_mean(str(instance), options))
        return
    if error.validator in ("anyOf", "oneOf") and error.context:
        # A branch whose shape fits failed deeper inside: that error says the most.
        deeper = [e for e in error.context if len(e.absolute_path) > len(error.absolute_path)]
        if deeper:
            yield from _describe(best_match(deeper), document)
            return
    if schema.get("errorMessage"):
        yield _at(document, path, schema["errorMessage"], value_hint(schema, instance))
        return
    if error.validator in ("anyOf", "oneOf") and error.context:
        yield from _describe(best_match(error.context), document)
        return
    yield _at(document, path, _message(error, path))


def _message(error: ValidationError, path: tuple[Any, ...]) -> str:
    subject = f'"{path[-1]}"' if path and isinstance(path[-1], str) else "this value"
    instance: Any = error.instance  # untyped JSON, as in _describe
    value: Any = error.validator_value
    if error.validator == "required":
        missing = [name for name in value if name not in instance]
        title = error.schema.get("title", "this mapping") if isinstance(error.schema, dict) else "this mapping"
        return f"{title} is missing " + ", ".join(f'"{name}"' for name in missing)
    if error.validator == "type":
        expected = value if isinstance(value, str) else " or ".join(value)
        return f"{subject} must be of type {expected}"
    if error.validator == "enum":
        return f"{subject} must be one of " + ", ".join(json.dumps(v) for v in value)
    return error.message if len(error.message) <= 200 else error.message[:197] + "..."


def _at(document: SourceDocument, path: tuple[Any, ...], message: str, hint: str | None = None,
        at_key: bool = False) -> Diagnostic:
    line, column = document.key_position(path) if at_key else document.position(path)
    return Diagnostic(document.file, line, column, None, message, hint, code="test-schema")
