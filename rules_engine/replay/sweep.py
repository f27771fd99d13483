"""Backtest sweeps: one replay per combination of rule parameters, through an executor.

    spec = load_sweep(Path("sweep.yaml"))
    grid = Grid.build(spec, rule_files)                  # raises SweepFileError, pinned to the sweep file
    jobs = grid.jobs(ReplaySettings(data=(DataSpec("XBTUSD_60.csv"),), wallet={"ZUSD": Decimal(10000)}))
    table = SweepTable.of(spec, grid, ProcessPoolSweep(workers=4).run(jobs), rank_by="return")

Each combination's values are written into the rule files' text at the place the field is
written (so a row is exactly what `rules-engine replay` gives for rule files edited by hand
that way), the rules are loaded and checked like any rule file, and the replay runs the
offline loop (`replay.run_replay`). A job carries the rule texts and the data files' paths,
so it runs the same in a local process pool or on a Dask worker (`sweep_executors`); a
row holds only numbers and strings, so the tables are identical whichever ran them.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from yaml.nodes import Node

from rules_engine.core import RiskLimits
from rules_engine.core.trace import jsonable
from rules_engine.replay.data import DataError, open_data
from rules_engine.replay.replay import run_replay
from rules_engine.replay.sweep_file import Parameter, SweepFileError, SweepSpec
from rules_engine.rules import Diagnostic, load_rules_sources
from rules_engine.rules.diagnostics import did_you_mean
from rules_engine.rules.yaml_source import SourceDocument, read_source

# metric -> True when higher is better
METRICS: dict[str, bool] = {
    "return": True, "pnl": True, "realised_pnl": True, "equity_end": True, "max_drawdown": False,
    "max_drawdown_pct": False, "fees": False, "trades": True, "wins": True, "fills": True, "fires": True,
    "exposure": True,
}
DEFAULT_METRIC = "return"
RESULT_COLUMNS = [
    "fires", "placed", "filled", "partially_filled", "expired", "cancelled", "fills", "trades", "wins", "fees", "pnl",
    "realised_pnl", "unrealised_pnl", "valuation", "other_currencies", "equity_start", "equity_end", "return",
    "max_drawdown", "max_drawdown_pct", "exposure", "held_back", "errors", "ticks",
]


@dataclass(frozen=True)
class DataSpec:
    """A data file as `open_data` takes it (the path must be readable where the job runs)."""

    path: str
    data_format: str | None = None
    pair: str | None = None
    interval: float | None = None


@dataclass(frozen=True)
class ReplaySettings:
    """What every combination's replay shares (the replay command's options)."""

    data: tuple[DataSpec, ...]
    wallet: Mapping[str, Decimal] = field(default_factory=dict)
    futures_wallet: Mapping[str, Decimal] = field(default_factory=dict)
    limits: RiskLimits | None = None
    timers: bool = True
    balance_max_age: float = 10.0


@dataclass(frozen=True)
class Job:
    """One combination: its values and the rule files' texts with the values written in."""

    combination: int  # 1-based, in grid order (the first parameter varies slowest)
    values: tuple[tuple[str, Any], ...]
    sources: tuple[tuple[str, bytes], ...]
    settings: ReplaySettings


class JobError(Exception):
    """A combination could not be replayed (bad data); the message names it."""


# ----------------------------------------------------------------------------- the grid


@dataclass(frozen=True)
class _Slot:
    """Where one parameter's value is written: a file and a span of its text."""

    file: str
    start: int
    end: int


@dataclass
class Grid:
    """The rule files' texts and, for each parameter, the span its values replace."""

    spec: SweepSpec
    texts: dict[str, str]
    order: list[str]
    slots: list[_Slot]

    @classmethod
    def build(cls, spec: SweepSpec, sources: Sequence[tuple[str, bytes]]) -> Grid:
        """Find each parameter's rule and field in the rule files; SweepFileError (at the
        parameter in the sweep file) when a rule or field is not there, or when any
        combination's rules do not load."""
        documents: dict[str, SourceDocument] = {}
        for name, raw in sources:
            document, _ = read_source(raw, name)
            if document is not None:
                documents[name] = document
        rules: dict[str, tuple[str, int]] = {}
        for name, document in documents.items():
            written = document.data.get("rules") if isinstance(document.data, dict) else None
            for index, rule in enumerate(written if isinstance(written, list) else []):
                if isinstance(rule, dict) and isinstance(rule.get("id"), str):
                    rules.setdefault(rule["id"], (name, index))
        problems: list[Diagnostic] = []
        slots = []
        for parameter in spec.parameters:
            slot = _slot(spec, parameter, rules, documents, problems)
            if slot is not None:
                slots.append(slot)
        if problems:
            raise SweepFileError(problems)
        grid = cls(spec, {name: document.text for name, document in documents.items()},
                   [name for name, _ in sources], slots)
        grid._check_every_combination()
        return grid

    def combinations(self) -> list[tuple[Any, ...]]:
        return list(itertools.product(*(p.values for p in self.spec.parameters)))

    def sources(self, values: Sequence[Any]) -> tuple[tuple[str, bytes], ...]:
        """The rule files with `values` (one per parameter) written in."""
        return self._written(zip(self.slots, values, strict=True))

    def _written(self, changes: Iterable[tuple[_Slot, Any]]) -> tuple[tuple[str, bytes], ...]:
        """The rule files with each (slot, value) written in; other values stay as written."""
        edits: dict[str, list[tuple[_Slot, Any]]] = {}
        for slot, value in changes:
            edits.setdefault(slot.file, []).append((slot, value))
        result = []
        for name in self.order:
            text = self.texts[name]
            for slot, value in sorted(edits.get(name, []), key=lambda item: -item[0].start):
                text = text[: slot.start] + yaml_scalar(value) + text[slot.end:]
            result.append((name, text.encode("utf-8")))
        return tuple(result)

    def jobs(self, settings: ReplaySettings) -> list[Job]:
        names = [p.name for p in self.spec.parameters]
        return [Job(index, tuple(zip(names, values, strict=True)), self.sources(values), settings)
                for index, values in enumerate(self.combinations(), start=1)]

    def _check_every_combination(self) -> None:
        """Load each value written in (one parameter at a time, the other fields as the rule
        files write them, so a bad value is blamed on itself alone) and report a value the
        rules refuse at its place in the sweep file."""
        problems = []
        for slot, parameter in zip(self.slots, self.spec.parameters, strict=True):
            for value, (line, column) in zip(parameter.values, parameter.where, strict=True):
                loaded = load_rules_sources(self._written([(slot, value)]))
                if loaded.errors:
                    error = loaded.errors[0]
                    problems.append(Diagnostic(self.spec.file, line, column, None,
                                               f"{parameter.name}={plain(value)} makes the rules invalid: {error}",
                                               code="sweep-value"))
        if problems:
            raise SweepFileError(sorted(set(problems), key=Diagnostic.sort_key))


def _slot(spec: SweepSpec, parameter: Parameter, rules: Mapping[str, tuple[str, int]],
          documents: Mapping[str, SourceDocument], problems: list[Diagnostic]) -> _Slot | None:
    def fail(message: str, hint: str | None = None) -> None:
        problems.append(Diagnostic(spec.file, parameter.line, parameter.column, None, message, hint,
                                   code="sweep-parameter"))

    found = rules.get(parameter.rule)
    if found is None:
        fail(f'no rule "{parameter.rule}" in the rule files', did_you_mean(parameter.rule, sorted(rules)))
        return None
    name, index = found
    document = documents[name]
    path = ("rules", index, *parameter.path)
    node: Node | None = document.nodes.get(path)
    rule_line = document.position(("rules", index))[0]
    if node is None:
        *parent, last = path
        written = sorted(str(p[-1]) for p in document.nodes if len(p) == len(path) and list(p[:-1]) == parent
                         and isinstance(p[-1], str))
        fail(f'rule "{parameter.rule}" ({name}:{rule_line}) has no {parameter.field} written in it; a sweep '
             "changes a value written in the rule (write a starting value there)",
             did_you_mean(str(last), written) if isinstance(last, str) else None)
        return None
    if sum(1 for other in document.nodes.values() if other is node) > 1:
        fail(f'rule "{parameter.rule}" {parameter.field} ({name}:{node.start_mark.line + 1}) is written through a '
             "YAML alias or anchor; write the value out in the rule to sweep it")
        return None
    start, end = node.start_mark.index, node.end_mark.index
    end = start + len(document.text[start:end].rstrip())  # a block scalar's span ends with its newline
    return _Slot(name, start, end)


def yaml_scalar(value: Any) -> str:
    """A value as YAML flow text that reads back as the same value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return plain(value)
    if isinstance(value, int):
        return str(value)
    return json.dumps(str(value))  # a double-quoted YAML scalar


def plain(value: Any) -> str:
    """A value as text: Decimals without exponent, booleans in YAML's spelling."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        text = format(value, "f")
        return text.rstrip("0").rstrip(".") if "." in text else text
    return str(value)


# ----------------------------------------------------------------------------- one job


def run_job(job: Job) -> dict[str, Any]:
    """Replay one combination and return its row (plain JSON values only). Runs in a worker
    process: everything it needs is in the job."""
    loaded = load_rules_sources(job.sources)
    if loaded.ruleset is None:
        raise JobError(f"combination {job.combination}: the rules are invalid: {loaded.errors[0]}")
    settings = job.settings
    try:
        data = [open_data(Path(d.path), data_format=d.data_format, pair=d.pair, interval=d.interval)
                for d in settings.data]
        result = run_replay(loaded.ruleset, data, wallet=settings.wallet, futures_wallet=settings.futures_wallet,
                            limits=settings.limits, timers=settings.timers, balance_max_age=settings.balance_max_age)
    except (DataError, OSError) as exc:
        raise JobError(f"combination {job.combination}: {exc}") from None
    totals = result.ledger.totals(result.period)
    valuation = totals["valuation"]
    row: dict[str, Any] = {"combination": job.combination}
    row.update((name, plain(value)) for name, value in job.values)
    others: list[str] = []
    amounts: dict[str, str] = {}
    for key in ("fees", "pnl", "realised_pnl", "unrealised_pnl"):
        by_asset = totals[key]
        amounts[key] = by_asset.get(valuation, "0") if valuation else "0"
        others.extend(f"{key} {asset}={amount}" for asset, amount in by_asset.items()
                      if asset != valuation and amount != "0")
    orders = totals["orders"]
    row.update({
        "fires": result.fire_count, **{k: orders.get(k, 0) for k in
                                       ("placed", "filled", "partially_filled", "expired", "cancelled")},
        "fills": totals["fills"], "trades": totals["trades"], "wins": totals["wins"], **amounts,
        "valuation": valuation, "other_currencies": "; ".join(others), "equity_start": totals["equity_start"],
        "equity_end": totals["equity_end"], "return": totals["return"], "max_drawdown": totals["max_drawdown"],
        "max_drawdown_pct": totals["max_drawdown_pct"], "exposure": totals["exposure"],
        "held_back": result.held_back, "errors": len(result.ledger.errors), "ticks": result.ticks,
    })
    result.ledger.close()
    return dict(jsonable(row))


# ----------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class SweepTable:
    """The rows, best first by `rank_by` (ties and missing values: by combination)."""

    parameters: tuple[str, ...]
    rank_by: str
    rows: tuple[dict[str, Any], ...]

    @classmethod
    def of(cls, spec: SweepSpec, rows: Sequence[Mapping[str, Any]], rank_by: str) -> SweepTable:
        higher = METRICS[rank_by]

        def key(row: Mapping[str, Any]) -> tuple[int, Decimal, int]:
            value = row.get(rank_by)
            if value is None:
                return (1, Decimal(0), row["combination"])
            number = Decimal(str(value))
            return (0, -number if higher else number, row["combination"])

        return cls(tuple(p.name for p in spec.parameters), rank_by, tuple(dict(r) for r in sorted(rows, key=key)))

    @property
    def columns(self) -> list[str]:
        return ["rank", "combination", *self.parameters, *RESULT_COLUMNS]

    @property
    def best(self) -> dict[str, Any] | None:
        return self.rows[0] if self.rows and self.rows[0].get(self.rank_by) is not None else None

    def ranked(self) -> list[dict[str, Any]]:
        """The rows with their rank (1 = best), every column in order."""
        return [{"rank": rank, **{c: row.get(c) for c in self.columns[1:]}}
                for rank, row in enumerate(self.rows, start=1)]
