"""Schema violations of a YAML side file (a sweep file, a subscriptions file) as diagnostics
at the `file:line:column` they were written, with "did you mean" for unknown keys and enum
values: the rule files' way of reporting (`schema_check`), for the simpler schemas of the
files beside them.

    diagnostics = schema_diagnostics(validator, document, code="sweep-file")
    document = read_side_file(path, "sweep file", EMPTY_SWEEP_FILE, "sweep-file", validator, SweepFileError)

The schema may carry `title` (names a mapping or an enum: `unknown metric "retrun"`) and
`errorMessage` (replaces jsonschema's words for that value).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from rules_engine.rules.diagnostics import Diagnostic, did_you_mean
from rules_engine.rules.yaml_source import MAX_FILE_BYTES, SourceDocument, read_source


def schema_diagnostics(validator: Draft202012Validator, document: SourceDocument, code: str) -> list[Diagnostic]:
    """Every schema violation, at the line and column it was written, in file order."""
    found: dict[tuple[int, int, str], Diagnostic] = {}
    for error in validator.iter_errors(document.data):
        for diagnostic in _describe(error, document, code):
            found.setdefault((diagnostic.line, diagnostic.column, diagnostic.message), diagnostic)
    return sorted(found.values(), key=Diagnostic.sort_key)


def read_side_file(path: Path, what: str, empty: str, code: str, validator: Draft202012Validator,
                   error: Callable[[list[Diagnostic]], Exception], empty_fallback: str | None = None) -> SourceDocument:
    """Read, parse and schema-check a side file (`what`: "sweep file"); raises `error(diagnostics)`
    with every problem found at that stage. `empty` explains an empty file."""
    name = path.as_posix()
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise error([Diagnostic(name, 1, 1, None, f"cannot read the {what}: {exc.strerror or exc}",
                                code=code)]) from None
    if len(raw) > MAX_FILE_BYTES:
        raise error([Diagnostic(name, 1, 1, None, f"the {what} is larger than {MAX_FILE_BYTES:,} bytes", code=code)])
    document, problems = read_source(raw, name, empty)
    if document is None or problems:
        raise error(problems or [Diagnostic(name, 1, 1, None, empty_fallback or empty, code=code)])
    diagnostics = schema_diagnostics(validator, document, code)
    if diagnostics:
        raise error(diagnostics)
    return document


def diagnostic_at(document: SourceDocument, path: tuple[Any, ...], message: str, code: str, hint: str | None = None,
                  at_key: bool = False) -> Diagnostic:
    """A diagnostic at the value (or, `at_key`, the key) at `path`."""
    line, column = document.key_position(path) if at_key else document.position(path)
    return Diagnostic(document.file, line, column, None, message, hint, code=code)


def _describe(error: ValidationError, document: SourceDocument, code: str) -> list[Diagnostic]:
    path = tuple(error.absolute_path)
    schema = error.schema if isinstance(error.schema, dict) else {}
    instance: Any = error.instance  # untyped JSON
    value: Any = error.validator_value
    if "propertyNames" in error.absolute_schema_path and isinstance(instance, str):  # a key's name: point at it
        message = schema.get("errorMessage") or error.message
        return [diagnostic_at(document, path + (instance,), message, code, at_key=True)]
    if error.validator == "additionalProperties" and isinstance(instance, dict):
        known = sorted(schema.get("properties", {}))
        where = schema.get("title", "this mapping")
        return [diagnostic_at(document, path + (key,), f'unknown key "{key}" in {where}', code,
                              did_you_mean(str(key), known), at_key=True) for key in instance if key not in known]
    if error.validator == "required" and isinstance(instance, dict):
        missing = ", ".join(f'"{name}"' for name in value if name not in instance)
        return [diagnostic_at(document, path, f"{schema.get('title', 'this mapping')} is missing {missing}", code,
                              at_key=bool(path) and isinstance(path[-1], str))]  # at its name: `signalco:`
    if error.validator == "enum" and schema.get("title"):
        options = [str(v) for v in value]
        return [diagnostic_at(document, path, f'unknown {schema["title"]} "{instance}"', code,
                              did_you_mean(str(instance), options) or "one of " + ", ".join(options))]
    if schema.get("errorMessage"):
        return [diagnostic_at(document, path, schema["errorMessage"], code)]
    if error.validator in ("anyOf", "oneOf") and error.context:
        return _describe(best_match(error.context), document, code)
    if error.validator == "type":
        expected = value if isinstance(value, str) else " or ".join(value)
        subject = f'"{path[-1]}"' if path and isinstance(path[-1], str) else "this value"
        return [diagnostic_at(document, path, f"{subject} must be of type {expected}", code)]
    message = error.message if len(error.message) <= 200 else error.message[:197] + "..."
    return [diagnostic_at(document, path, message, code)]
