"""A test file the schema rejects anywhere is still checked everywhere else, and never crashes
the checks: every value of the example test files, two levels deep, replaced by a wrong shape or
deleted, gives errors (never an exception, never a test that runs)."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import pytest
import yaml

from rules_engine.testing.spec import load_test_file

EXAMPLES = Path(__file__).resolve().parents[2] / "rules"
WRONG = ({"x": 1}, [{"y": 2}], "DELETE")


def paths(value, prefix=(), depth=2):
    if prefix:
        yield prefix
    if len(prefix) >= depth:
        return
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        yield from paths(child, prefix + (key,), depth)


def mutated(data, path, wrong):
    copied = copy.deepcopy(data)
    parent = copied
    for step in path[:-1]:
        parent = parent[step]
    if wrong == "DELETE":
        del parent[path[-1]]
    else:
        parent[path[-1]] = wrong
    return copied


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.glob("*.test.yaml")))
def test_wrong_shapes_anywhere_give_errors_not_exceptions(example, tmp_path):
    for rule_file in EXAMPLES.glob("*.yaml"):
        shutil.copy(rule_file, tmp_path / rule_file.name)
    data = yaml.safe_load((EXAMPLES / example).read_text())
    target = tmp_path / example
    for path in paths(data):
        for wrong in WRONG:
            document = mutated(data, path, wrong)
            if document == data:
                continue
            target.write_text(yaml.safe_dump(document))
            loaded = load_test_file(target)  # never raises
            if loaded.errors:
                assert loaded.tests == []
