"""Read a sweep file (`replay --sweep FILE`) into the grid's parameters, every problem at
`file:line:column`.

    version: 1
    rank_by: return
    parameters:
      - rule: btc-breakout-buy
        field: triggers[0].crosses_above
        values: [68000, 70000, 72000]
      - rule: btc-breakout-buy
        field: actions[1].volume
        range: {start: 0.01, stop: 0.03, step: 0.01}   # 0.01, 0.02, 0.03

Layers: YAML by the rule loader's safe reader (positions, no tags, duplicate keys refused);
the schema `schemas/replay-sweep.schema.json`; then meaning (ranges, sizes). Whether each
rule and field exists is checked against the rule files by `sweep.Grid`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from rules_engine.resources import schema_path
from rules_engine.rules.diagnostics import Diagnostic
from rules_engine.rules.file_schema import diagnostic_at, read_side_file
from rules_engine.rules.yaml_source import JsonPath, SourceDocument

SWEEP_SCHEMA = "replay-sweep.schema.json"
MAX_COMBINATIONS = 10_000
EMPTY_SWEEP_FILE = "the sweep file is empty; it holds `version: 1` and `parameters:`"
MAX_RANGE_VALUES = 1_000
_FIELD_PART = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)((?:\[[0-9]+\])*)")


class SweepFileError(Exception):
    """The sweep file is unusable; `diagnostics` says where and why."""

    def __init__(self, diagnostics: list[Diagnostic]):
        super().__init__("\n".join(str(d) for d in diagnostics))
        self.diagnostics = diagnostics


@dataclass(frozen=True)
class Parameter:
    """One swept field of one rule, and the values it takes, each with where it was written."""

    rule: str
    field: str
    path: tuple[str | int, ...]  # the field as a path inside the rule's mapping
    name: str
    values: tuple[Any, ...]
    where: tuple[tuple[int, int], ...]  # (line, column) of each value (a range: of the range)
    line: int
    column: int


@dataclass(frozen=True)
class SweepSpec:
    file: str
    parameters: tuple[Parameter, ...]
    rank_by: str | None

    @property
    def size(self) -> int:
        count = 1
        for parameter in self.parameters:
            count *= len(parameter.values)
        return count


def field_path(field: str) -> tuple[str | int, ...]:
    """`actions[1].price` -> ("actions", 1, "price") (the schema checked the spelling)."""
    path: list[str | int] = []
    for part in field.split("."):
        match = _FIELD_PART.fullmatch(part)
        assert match is not None, field
        path.append(match.group(1))
        path.extend(int(index) for index in re.findall(r"\[([0-9]+)\]", match.group(2)))
    return tuple(path)


def load_sweep(path: Path) -> SweepSpec:
    """The sweep file's parameters; raises SweepFileError with every problem found."""
    document = read_side_file(path, "sweep file", EMPTY_SWEEP_FILE, "sweep-file", sweep_validator(), SweepFileError,
                              empty_fallback="the sweep file is empty")
    name = document.file
    diagnostics: list[Diagnostic] = []
    parameters = []
    seen: dict[tuple[str, tuple[str | int, ...]], int] = {}
    for index, raw_parameter in enumerate(document.data["parameters"]):
        here = ("parameters", index)
        line, column = document.position(here)
        values, where = _values(document, here, raw_parameter, diagnostics)
        inside = field_path(raw_parameter["field"])
        key = (raw_parameter["rule"], inside)
        if key in seen:
            diagnostics.append(_at(document, here + ("field",),
                                   f'rule "{key[0]}" field {raw_parameter["field"]} is already swept by '
                                   f"parameter {seen[key] + 1}"))
        seen.setdefault(key, index)
        column_name = raw_parameter.get("name") or str(next(p for p in reversed(inside) if isinstance(p, str)))
        parameters.append(Parameter(raw_parameter["rule"], raw_parameter["field"], inside, column_name, tuple(values),
                                    tuple(where), line, column))
    names = [p.name for p in parameters]
    for index, parameter in enumerate(parameters):
        if names.count(parameter.name) > 1:
            diagnostics.append(_at(document, ("parameters", index), f'two parameters are named "{parameter.name}": '
                                   "give them distinct `name:`s (the result tables' column names)"))
    spec = SweepSpec(name, tuple(parameters), document.data.get("rank_by"))
    if not diagnostics and spec.size > MAX_COMBINATIONS:
        diagnostics.append(_at(document, ("parameters",), f"the grid has {spec.size:,} combinations, more than "
                               f"{MAX_COMBINATIONS:,}: sweep fewer values, or split it into several sweeps"))
    if diagnostics:
        raise SweepFileError(sorted(set(diagnostics), key=Diagnostic.sort_key))
    return spec


def _values(document: SourceDocument, here: JsonPath, raw: dict[str, Any],
            diagnostics: list[Diagnostic]) -> tuple[list[Any], list[tuple[int, int]]]:
    if "values" in raw:
        values = list(raw["values"])
        return values, [document.position(here + ("values", i)) for i in range(len(values))]
    spec = raw["range"]
    start, stop, step = (Decimal(str(spec[k])) for k in ("start", "stop", "step"))
    where = document.position(here + ("range",))
    if stop < start:
        diagnostics.append(_at(document, here + ("range",), f"range: stop {stop} is below start {start}"))
        return [], []
    count = int((stop - start) / step) + 1
    if count > MAX_RANGE_VALUES:
        diagnostics.append(_at(document, here + ("range",), f"range gives {count:,} values, more than "
                               f"{MAX_RANGE_VALUES:,}: use a larger step"))
        return [], []
    integral = all(isinstance(spec[k], int) for k in ("start", "stop", "step"))
    values = [start + step * k for k in range(count)]
    return [int(v) if integral else v for v in values], [where] * count


# ----------------------------------------------------------------------------- schema


@lru_cache(maxsize=1)
def sweep_validator() -> Draft202012Validator:
    schema = json.loads(schema_path(SWEEP_SCHEMA).read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def _at(document: SourceDocument, path: tuple[Any, ...], message: str) -> Diagnostic:
    return diagnostic_at(document, path, message, "sweep-file")
