"""The registry of trigger and action types, and what is derived from it: the names table, the
committed JSON Schema, what rules need from the service, and the docs tables."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rules_engine.core.env import CORE_NAMES
from rules_engine.core.model import ActionSpec, TriggerSpec
from rules_engine.registry import (
    action_types,
    context_names,
    env_names,
    names_for_triggers,
    trigger_types,
    unavailable_names,
)
from rules_engine.rules.rule_schema import render_rules_schema

REPO = Path(__file__).resolve().parents[1]


def test_every_module_in_the_type_packages_is_a_registered_type():
    for package, registered in (("triggers", trigger_types()), ("actions", action_types())):
        modules = sorted(p.stem for p in (REPO / "rules_engine" / package).glob("*.py") if not p.stem.startswith("_"))
        assert list(registered) == modules
    assert all(issubclass(t.spec, TriggerSpec) for t in trigger_types().values())
    assert all(issubclass(a.spec, ActionSpec) for a in action_types().values())


def test_the_names_table_is_the_one_the_specs_give_the_engine():
    assert context_names() == {name: t.spec.provides for name, t in trigger_types().items()}
    assert env_names() == CORE_NAMES | frozenset().union(*context_names().values())


def test_names_for_triggers_is_what_every_trigger_of_the_rule_provides():
    assert names_for_triggers(["price"]) == CORE_NAMES | context_names()["price"]
    assert names_for_triggers(["price", "signal"]) == CORE_NAMES
    assert names_for_triggers(["price", "spread"]) == CORE_NAMES | {"bid", "ask", "mid", "symbol", "market", "level"}
    assert names_for_triggers(["signal", "signal"]) == CORE_NAMES | {"signal", "source"}
    assert names_for_triggers([]) == CORE_NAMES == {"trigger", "rule_id", "now", "balance", "price_of", "open_orders"}
    with pytest.raises(ValueError, match="unknown trigger type 'webhook'"):
        names_for_triggers(["webhook"])
    assert unavailable_names()["bid"].startswith("price and spread triggers provide it")


def test_the_committed_schema_is_the_generated_one():
    committed = (REPO / "schemas" / "rules.schema.json").read_text(encoding="utf-8")
    assert committed == render_rules_schema(), "schemas/rules.schema.json is stale: run `make schema`"


# ----------------------------------------------------------------------------- docs tables


def names_table() -> str:
    """The README's table of the names each trigger type provides."""
    lines = ["| trigger type | names it provides |", "|---|---|"]
    for name, kind in trigger_types().items():
        cells = ", ".join(f"`{n}`" + (f" ({what})" if what else "") for n, what in kind.names.items())
        lines.append(f"| `{name}` | {cells} |")
    return "\n".join(lines) + "\n"


def types_table() -> str:
    """docs/developing.md's table of the types and their modules."""
    lines = ["| kind | type | module | what it is |", "|---|---|---|---|"]
    for kind, package, types in (("trigger", "triggers", trigger_types()), ("action", "actions", action_types())):
        for name, declared in types.items():
            lines.append(f"| {kind} | `{name}` | `rules_engine/{package}/{name}.py` | {declared.summary} |")
    return "\n".join(lines) + "\n"


def test_the_readme_names_table_is_generated_from_the_registry():
    assert names_table() in (REPO / "README.md").read_text(), "paste this into README.md:\n" + names_table()


def test_the_developing_guide_lists_every_type():
    guide = (REPO / "docs" / "developing.md").read_text()
    assert types_table() in guide, "paste into docs/developing.md:\n" + types_table()


def _headed(text: str, start: str, end: str) -> set[str]:
    section = text[text.index(start):text.index(end)]
    headings = re.findall(r"^#### (.*)$", section, flags=re.M)
    return {name for heading in headings for name in re.findall(r"`(\w+)`", heading)}


def test_the_rule_language_reference_has_a_section_for_every_type():
    readme = (REPO / "README.md").read_text()
    assert _headed(readme, "### Triggers", "### Conditions") == set(trigger_types())
    assert _headed(readme, "### Actions", "### Safe loading") == set(action_types())
