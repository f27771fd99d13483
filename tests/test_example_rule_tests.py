"""Every example rule in rules/ has tests beside it, and they pass."""

from pathlib import Path

from rules_engine.rules import load_rules
from rules_engine.testing import find_test_files, render_text, run_files
from rules_engine.testing.spec import is_test_file, load_test_file

RULES = Path(__file__).resolve().parent.parent / "rules"


def rule_files() -> list[Path]:
    return sorted(p for p in RULES.glob("*.yaml") if not is_test_file(p))


def test_every_rule_file_has_a_test_file_that_names_it():
    for rule_file in rule_files():
        test_file = rule_file.with_name(rule_file.stem + ".test.yaml")
        assert test_file.exists(), f"{rule_file.name} has no tests beside it"
        loaded = load_test_file(test_file)
        assert not loaded.errors, [str(e) for e in loaded.errors]
        assert [Path(f).name for f in loaded.tests[0].ruleset.files] == [rule_file.name]


def test_every_example_rule_is_expected_in_some_test():
    for rule_file in rule_files():
        rule_ids = {rule.id for rule in load_rules([rule_file]).ruleset.rules}
        tests = load_test_file(rule_file.with_name(rule_file.stem + ".test.yaml")).tests
        mentioned = {e.rule for case in tests for e in case.expectations}
        assert rule_ids <= mentioned, f"{rule_file.name}: no test expects {sorted(rule_ids - mentioned)}"


def test_the_example_rule_tests_pass():
    results = run_files(find_test_files([str(RULES)]))
    assert len(results) == len(rule_files())
    assert all(result.passed for result in results), render_text(results)
