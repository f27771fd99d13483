"""The example rules in rules/ and the complete examples in the README's rule language reference are valid."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rules_engine.rules import load_rules, load_rules_text
from rules_engine.registry import action_types, trigger_types

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


def _doc_files() -> list[str]:
    text = (REPO / "README.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text, flags=re.S)
    return [b for b in blocks if re.search(r"^version: 1$", b, flags=re.M) and re.search(r"^rules:", b, flags=re.M)]


def test_complete_examples_in_the_docs_are_valid():
    files = _doc_files()
    assert len(files) >= 5
    for number, text in enumerate(files, start=1):
        result = load_rules_text(text, f"docs-example-{number}.yaml")
        assert [str(d) for d in result.errors] == [], text
