"""The example rules in rules/ are valid (the examples in the docs: tests/test_docs_examples.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rules_engine.registry import action_types, trigger_types
from rules_engine.rules import load_rules

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(p for p in (REPO / "rules").glob("*.yaml") if not p.name.endswith(".test.yaml"))
MODELINE = "# yaml-language-server: $schema=../schemas/rules.schema.json\n"


def test_examples_are_valid_without_warnings():
    result = load_rules([REPO / "rules"])
    assert [str(d) for d in result.errors + result.warnings] == []
    assert len(result.ruleset.rules) == result.rule_count >= 8


def test_examples_cover_every_trigger_and_action_type():
    rules = load_rules([REPO / "rules"]).ruleset.rules
    assert {t.type for r in rules for t in r.triggers} == set(trigger_types())
    assert {a.type for r in rules for a in r.actions} == set(action_types())


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_start_with_the_schema_modeline(path):
    assert path.read_text().startswith(MODELINE)
    assert (path.parent / "../schemas/rules.schema.json").resolve().is_file()
