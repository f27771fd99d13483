"""The trigger and action types, and everything derived from them.

A type is one module: `rules_engine/triggers/<name>.py` or `rules_engine/actions/<name>.py`.
The registry scans those two packages (on first use, in name order) and imports every module
whose name does not start with `_` (those are shared helpers); each must define `TYPE`, a
`TriggerType` or an `ActionType` named like the module. Adding a type is adding a module: no
list to edit, and a module that is not a proper type fails loudly at the first load.

Derived from the registry: the rule loader's builders (`rules.builder`), the names a rule's
expressions may use (`names_for_triggers`: the one table of which trigger type provides which
name), the JSON Schema of rule files (`rules.rule_schema`), what a rule set needs from the
service (`rules_engine.needs`) and the docs tables (checked by tests/test_registry.py). The
engine core gets its behaviour through the spec objects themselves (`TriggerSpec.watcher`,
`ActionSpec.run`), never from here.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

from rules_engine.core.env import CORE_NAMES
from rules_engine.core.model import ActionSpec, Rule, TriggerSpec

if TYPE_CHECKING:
    from rules_engine.pairs import PairRegistry
    from rules_engine.rules.context import BuildContext
    from rules_engine.rules.diagnostics import Diagnostic
    from rules_engine.rules.yaml_source import JsonPath
    from rules_engine.schedule import Schedule

TRIGGER_PACKAGE = "rules_engine.triggers"
ACTION_PACKAGE = "rules_engine.actions"


@dataclass(frozen=True)
class Needs:
    """What one trigger or action needs from the service: ticker feeds (market, symbol), timer
    schedules, signal sources."""

    feeds: tuple[tuple[str, str], ...] = ()
    timers: tuple[Schedule, ...] = ()
    signal_sources: tuple[str, ...] = ()


def _needs_nothing(spec: Any) -> Needs:
    return Needs()


@dataclass(frozen=True)
class TriggerType:
    """One trigger type, as its module declares it.

    - `schema`: its JSON Schema, `$defs/<name>_trigger` in the rule-file schema (it may refer to
      the shared definitions of `rules.rule_schema`, and to its own `schema_defs`);
    - `build(ctx, path, fields, defaults)`: the spec from the fields the schema accepted, or None
      after reporting every problem (see `rules_engine.rules.context.BuildContext`);
    - `names`: the expression names a firing provides, each with what it holds (the docs table);
      the spec's `provides` must be the same names;
    - `needs(spec)`: what a trigger of this type needs from the service;
    - `warnings(rule, index, spec, pairs)`: diagnostics about a valid but probably wrong trigger.
    """

    name: str
    spec: type[TriggerSpec]
    summary: str
    schema: dict[str, Any]
    build: Callable[[BuildContext, JsonPath, Mapping[str, Any], Mapping[str, Any]], TriggerSpec | None]
    names: Mapping[str, str]
    needs: Callable[[Any], Needs] = _needs_nothing
    schema_defs: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    warnings: Callable[[Rule, int, Any, PairRegistry], Iterable[Diagnostic]] | None = None


@dataclass(frozen=True)
class ActionType:
    """One action type, as its module declares it: `schema` (`$defs/<name>`), `build(ctx, path,
    fields, names)` (names: what the rule's expressions may use), `needs` and `warnings` as for
    triggers. What the action does is its spec's `run` method."""

    name: str
    spec: type[ActionSpec]
    summary: str
    schema: dict[str, Any]
    build: Callable[[BuildContext, JsonPath, Mapping[str, Any], Collection[str]], ActionSpec | None]
    needs: Callable[[Any], Needs] = _needs_nothing
    schema_defs: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    warnings: Callable[[Rule, int, Any, PairRegistry], Iterable[Diagnostic]] | None = None


@cache
def trigger_types() -> Mapping[str, TriggerType]:
    """Every trigger type by name, in name order."""
    return _scan(TRIGGER_PACKAGE, TriggerType)


@cache
def action_types() -> Mapping[str, ActionType]:
    """Every action type by name, in name order."""
    return _scan(ACTION_PACKAGE, ActionType)


def _scan(package_name: str, kind: type[Any]) -> dict[str, Any]:
    package = importlib.import_module(package_name)
    found: dict[str, Any] = {}
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{package_name}.{info.name}")
        declared = getattr(module, "TYPE", None)
        if not isinstance(declared, kind):
            raise TypeError(f"{module.__name__} must define TYPE = {kind.__name__}(...)")
        if declared.name != info.name or declared.spec.type != info.name:
            raise ValueError(f"{module.__name__}: the module, TYPE.name and the spec's type must all be {info.name!r}")
        if kind is TriggerType and frozenset(declared.names) != declared.spec.provides:
            raise ValueError(f"{module.__name__}: TYPE.names and {declared.spec.__name__}.provides differ")
        found[declared.name] = declared
    return found


# ----------------------------------------------------------------------------- expression names


@cache
def context_names() -> Mapping[str, frozenset[str]]:
    """The one table of expression names: trigger type -> the names its firing provides."""
    return {name: frozenset(t.names) for name, t in trigger_types().items()}


@cache
def all_context_names() -> frozenset[str]:
    """Every name some trigger type provides."""
    return frozenset().union(*context_names().values())


def env_names() -> frozenset[str]:
    """Every name an expression may use under some trigger (the core's own names included)."""
    return CORE_NAMES | all_context_names()


def names_for_triggers(trigger_types: Iterable[str]) -> frozenset[str]:
    """The names a rule's expressions may use, given the types of the rule's triggers.

    A context name is allowed only when every trigger of the rule provides it: a rule fired by
    a price crossing or a signal cannot rely on `price` being set. Raises ValueError for a
    trigger type that is not registered."""
    table = context_names()
    context: frozenset[str] | None = None
    for trigger_type in trigger_types:
        try:
            provided = table[trigger_type]
        except KeyError:
            raise ValueError(f"unknown trigger type {trigger_type!r}") from None
        context = provided if context is None else context & provided
    return CORE_NAMES | (context or frozenset())


@cache
def unavailable_names() -> Mapping[str, str]:
    """For each context name, why a rule whose triggers do not all provide it cannot use it
    (the expression checker's message)."""
    reasons = {}
    for name in sorted(all_context_names()):
        kinds = " and ".join(kind for kind, provided in context_names().items() if name in provided)
        reasons[name] = f"{kinds} triggers provide it, and a rule may use it only if all of its triggers do"
    return reasons
