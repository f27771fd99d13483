"""What every trigger and action builder needs: the document, the pair registry, a place to
report problems, and the conversions from written values to model values.

Value conventions (see `rules_engine.core.model`):
- In value positions (volume, price, minimum, txid, ...) a string that starts with `=` is an
  expression; anything else is a literal. Numbers and numeric strings become `Decimal` from the
  written text.
- `when`, `if` and `where` are always expressions (no `=`).
- Expression errors point at the exact character: the sandbox's column is added to the position
  of the YAML scalar (after its quote and the `=`).

Parts the schema rejected: builders read a mapping through `fields`, which leaves out every value
with a schema error in it, so they check what the schema accepted even in a rejected rule
(an unknown pair beside a missing price) and never re-report, or trip over, what it rejected.
They build a model object only from a part the schema accepted whole (`accepts`).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from decimal import Decimal
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from rules_engine.core.model import Expr, SourceRef, Template, Value
from rules_engine.durations import parse_duration
from rules_engine.expr import ExpressionError, compile_expression, compile_template
from rules_engine.pairs import PairRegistry
from rules_engine.registry import unavailable_names
from rules_engine.rules.diagnostics import Diagnostic, Severity, did_you_mean
from rules_engine.rules.literal_names import literal_name_problems
from rules_engine.rules.schema_check import SchemaReport
from rules_engine.rules.yaml_source import JsonPath, SourceDocument

_NUMERIC = re.compile(r"^[0-9]+(\.[0-9]+)?$")


class BuildContext:
    """Shared state while building the rules of one file."""

    def __init__(self, document: SourceDocument, registry: PairRegistry, schema: SchemaReport | None = None):
        self.document = document
        self.registry = registry
        self.diagnostics: list[Diagnostic] = []
        self._rejected = schema.rejected if schema is not None else frozenset()
        self._unknown_keys = schema.unknown_keys if schema is not None else {}

    # ------------------------------------------------------------------ what the schema accepted

    def accepts(self, path: JsonPath) -> bool:
        """Whether the value at `path`, and everything inside it, passed the schema."""
        return path not in self._rejected

    def may_hold(self, path: JsonPath, key: str, values: Collection[object] = ()) -> bool:
        """Whether the mapping at `path` may hold `key` misspelled: one of its unknown keys is close
        to `key`, or holds one of the `values` that `key` takes (`markt: futures`, `mkt: spot`)."""
        unknown_keys = self._unknown_keys.get(path, ())
        raw = self.document.data
        for step in path if unknown_keys else ():
            if isinstance(raw, dict):
                raw = raw.get(step)
            else:
                raw = raw[step] if isinstance(raw, list) and isinstance(step, int) and step < len(raw) else None
        for unknown in unknown_keys:
            if did_you_mean(unknown, [key]) or (isinstance(raw, dict) and raw.get(unknown) in values):
                return True
        return False

    def fields(self, path: JsonPath, raw: Any, nested: Collection[str] = ()) -> Mapping[str, Any]:
        """The entries of the mapping `raw` (written at `path`) that passed the schema; `nested`
        keys are kept regardless, for builders that check the parts inside them. Not a mapping: {}."""
        if not isinstance(raw, dict):
            return {}
        if path not in self._rejected:
            return raw
        return {key: value for key, value in raw.items() if key in nested or path + (key,) not in self._rejected}

    # ------------------------------------------------------------------ reporting

    def report(
        self,
        path: JsonPath,
        message: str,
        *,
        hint: str | None = None,
        code: str = "invalid",
        severity: Severity = "error",
        offset: int | None = None,
    ) -> None:
        self.diagnostics.append(
            self.document.diagnostic(path, message, hint=hint, code=code, severity=severity, offset=offset)
        )

    def error_count(self) -> int:
        return sum(1 for d in self.diagnostics if d.severity == "error")

    def source(self, path: JsonPath) -> SourceRef:
        line, column = self.document.position(path)
        return SourceRef(self.document.file, line, column, self.document.file_hash)

    # ------------------------------------------------------------------ conversions

    def expression(self, path: JsonPath, text: str, names: Collection[str], prefix: int = 0,
                   condition: bool = False) -> Expr | None:
        """Compile `text` (written at `path`, starting `prefix` characters into the scalar); a
        `condition` (`when`, `if`, `where`) must be able to give true or false."""
        try:
            compiled = compile_expression(text, frozenset(names), unavailable_names())
            not_a_condition = compiled.condition_problem() if condition else None
            if not_a_condition is not None:
                raise ExpressionError(*not_a_condition)
        except ExpressionError as exc:
            offset = prefix + max(exc.column or 1, 1) - 1
            self.report(path, f"invalid expression: {exc.message}", code="expression", offset=offset)
            return None
        for problem in literal_name_problems(compiled, self.registry):
            self.report(path, problem.message, hint=problem.hint, code=problem.code, severity=problem.severity,
                        offset=prefix)
        line, column = self.document.offset_position(path, prefix)
        return Expr(text, compiled, SourceRef(self.document.file, line, column, self.document.file_hash))

    def template(self, path: JsonPath, text: str, names: Collection[str]) -> Template | None:
        try:
            compiled = compile_template(text, frozenset(names), unavailable_names())
        except ExpressionError as exc:
            self.report(path, f"invalid message template: {exc.message}", code="expression",
                        offset=max(exc.column or 1, 1) - 1)
            return None
        return Template(text, compiled)

    def value(self, path: JsonPath, raw: Any, names: Collection[str], *, numeric: bool = True) -> Value:
        """A literal or an `=expression`; with `numeric`, numbers and numeric strings become Decimal."""
        if isinstance(raw, str) and raw.startswith("="):
            body = raw[1:]
            stripped = body.lstrip()
            return self.expression(path, stripped.rstrip(), names, prefix=1 + len(body) - len(stripped))
        if numeric and isinstance(raw, (int, Decimal)) and not isinstance(raw, bool):
            return Decimal(raw)
        if numeric and isinstance(raw, str) and _NUMERIC.fullmatch(raw):
            return Decimal(raw)
        return raw

    def literal(self, path: JsonPath, raw: str, what: str) -> str | None:
        """A string that must be written literally (pair, asset, symbol)."""
        if raw.startswith("="):
            self.report(path, f"{what} must be written literally; expressions are not allowed here", code="expression")
            return None
        return raw.strip()

    def duration(self, path: JsonPath, raw: str) -> float | None:
        try:
            return parse_duration(raw)
        except ValueError as exc:
            self.report(path, str(exc), code="duration")
            return None

    def timezone(self, path: JsonPath, name: str) -> bool:
        """Whether `name` is an IANA time zone; reports it (with the nearest names) when not."""
        try:
            ZoneInfo(name)
            return True
        except (ZoneInfoNotFoundError, ValueError, OSError):
            self.report(path, f'unknown time zone "{name}"', hint=did_you_mean(name, _zone_names()),
                        code="unknown-timezone")
            return False


@lru_cache(maxsize=1)
def _zone_names() -> list[str]:
    return sorted(available_timezones())
