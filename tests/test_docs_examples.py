"""Every YAML example in README.md and docs/*.md parses, and each one marked as a rule file,
a rule test file or an engine config is valid as one.

The marker is the word after the language on the opening fence (docs/developing.md):
```yaml rule-file``, ```yaml rule-test`` (checked against the test-file schema; the rule files
it names are not in the docs), ```yaml engine-config`` and ```yaml subscriptions`` (signal fan-out). A complete rule file (top-level
`version:` and `rules:`) or test file (`rules:` with `inputs:` or `tests:`) must be marked, so no
example escapes the check by being left unmarked."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from rules_engine.config import parse_config
from rules_engine.rules import load_rules_text
from rules_engine.rules.yaml_source import read_source
from rules_engine.service.subscriptions import load_subscriptions
from rules_engine.testing.schema import check_test_schema

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
MARKERS = ("rule-file", "rule-test", "engine-config", "subscriptions")
_FENCE = re.compile(r"^(`{3,}|~{3,})(\w*)[ \t]*(.*)$")


@dataclass(frozen=True)
class Block:
    doc: str
    line: int  # of the opening fence
    language: str
    marker: str
    text: str

    @property
    def name(self) -> str:
        return f"{self.doc}:{self.line}"


def blocks(path: Path) -> list[Block]:
    """The fenced code blocks of a Markdown file."""
    found = []
    lines = path.read_text(encoding="utf-8").split("\n")
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        fence, language, info = opening.groups()
        end = index + 1
        while end < len(lines) and not lines[end].startswith(fence):
            end += 1
        name = path.relative_to(REPO).as_posix()
        found.append(Block(name, index + 1, language, info.strip(), "\n".join(lines[index + 1:end]) + "\n"))
        index = end + 1
    return found


YAML_BLOCKS = [b for path in DOCS for b in blocks(path) if b.language in ("yaml", "yml")]


def marked(marker: str) -> list[Block]:
    return [b for b in YAML_BLOCKS if b.marker == marker]


def test_the_docs_hold_marked_examples_of_each_kind():
    counts = {marker: len(marked(marker)) for marker in MARKERS}
    assert counts["rule-file"] >= 20 and counts["rule-test"] >= 3 and counts["engine-config"] >= 5, counts
    assert {b.marker for b in YAML_BLOCKS} <= {"", *MARKERS}, "unknown marker"


@pytest.mark.parametrize("block", YAML_BLOCKS, ids=lambda b: b.name)
def test_every_yaml_example_parses_and_complete_files_are_marked(block):
    data = yaml.safe_load(block.text)
    if isinstance(data, dict) and "rules" in data and "version" in data:
        assert block.marker == "rule-file", f"{block.name}: a rule file example; mark it ```yaml rule-file"
    if isinstance(data, dict) and "rules" in data and ("inputs" in data or "tests" in data):
        assert block.marker == "rule-test", f"{block.name}: a rule test example; mark it ```yaml rule-test"


@pytest.mark.parametrize("block", marked("rule-file"), ids=lambda b: b.name)
def test_rule_file_examples_are_valid(block):
    result = load_rules_text(block.text, block.name)
    assert [str(d) for d in result.errors] == []
    assert result.rule_count >= 1
    # an example a trader copies must run in a dry run and a rule test, where the paper exchange trades
    assert [str(d) for d in result.warnings if d.code == "not-rehearsable"] == []


@pytest.mark.parametrize("block", marked("rule-test"), ids=lambda b: b.name)
def test_rule_test_examples_follow_the_test_file_schema(block):
    document, problems = read_source(block.text.encode(), block.name)
    assert document is not None and problems == []
    errors, _ = check_test_schema(document)
    assert [str(d) for d in errors] == []


@pytest.mark.parametrize("block", marked("engine-config"), ids=lambda b: b.name)
def test_engine_config_examples_are_valid(block):
    parse_config(yaml.safe_load(block.text), block.name)  # raises ConfigError listing every problem


@pytest.mark.parametrize("block", marked("subscriptions"), ids=lambda b: b.name)
def test_subscriptions_examples_are_valid(block, tmp_path):
    path = tmp_path / "subscriptions.yaml"
    path.write_text(block.text)
    load_subscriptions(path)  # raises SubscriptionsError listing every problem


def test_a_broken_example_would_be_caught():
    """The check is not vacuous: the shorthand docs/expressions.md once showed is refused."""
    old = "version: 1\nrules:\n  - id: x\n    triggers: [{type: timer, every: 1m}]\n    actions:\n      - log: hi\n"
    assert load_rules_text(old, "old.yaml").errors
