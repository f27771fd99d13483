"""YAML syntax errors in plain words, at the line:column where the author must look (for rule
files and rule test files alike), instead of the parser's "while scanning ..." state."""

from __future__ import annotations

import pytest

from rules_engine.cli import main
from rules_engine.rules import load_rules_text
from rules_engine.testing.spec import load_test_file

TAB = "a tab is used for indentation; YAML indents with spaces only (replace the tab with spaces)"


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        ("version: 1\nrules:\n\t- id: x\n", (3, 1), TAB),
        ("version: 1\nrules:\n  - id: x\n    triggers:\n  \t  - type: timer\n", (5, 3), TAB),
        ("version: 1\nrules:\n  - id: x\n  \ttriggers: []\n", (4, 3), TAB),
        ('version: 1\nrules:\n  - id: "x\n', (3, 9), 'the quoted string that starts here is never closed '
                                                   '(its closing " is missing)'),
        ("version: 1\nrules:\n  - id: x\n   triggers: []\n", (4, 4),
         'this line is not lined up with the list above it (which starts at 3:3): indent it like that '
         'list\'s items, or start a new item with "- "'),
        ("version: 1\nrules: [a, b\n", (3, 1), 'the "[" that opens at 2:8 is missing a "," between entries '
                                               'or its closing "]"'),
        ("version: 1\nrules: {a: 1\n", (3, 1), 'the "{" that opens at 2:8 is missing a "," between entries '
                                               'or its closing "}"'),
        ("version: 1\nrules: @all\n", (2, 8), '"@" cannot start an unquoted value; put the value in quotes'),
        ("version: 1\nrules: `x`\n", (2, 8), "a backtick cannot start an unquoted value; put the value in quotes"),
        ("version: 1\nrules: a: b\n", (2, 9), 'unexpected ": " here: quote a value that holds ": ", and line a '
                                              "key up with the keys above it"),
        ("version: 1\nrules: *all\n", (2, 8), '"*all" refers to an anchor "&all" that is not defined before it'),
        ("version: 1\nx: &a 1\nrules: &a []\n", (3, 8), 'the anchor "&a" is defined twice (first at 2:4)'),
        ("version: 1\nrules: []\n - x\n", (3, 2), "expected a key here, lined up with the keys of the mapping that "
                                             "starts at 1:1 (or text follows a closing quote on this line)"),
        ("version: 1\nrules: []\n---\nversion: 1\n", (3, 1), 'a file holds one YAML document: remove the "---" '
                                                             "and what follows, or put it in its own file"),
    ],
)
def test_syntax_errors_in_plain_words(text, where, message):
    [error] = load_rules_text(text, "r.yaml").errors
    assert error.code == "yaml-syntax"
    assert (error.line, error.column) == where
    assert error.message == f"invalid YAML: {message}"
    assert "while scanning" not in str(error) and "while parsing" not in str(error)


def test_validate_prints_the_tab_at_its_position(tmp_path, capsys):
    path = tmp_path / "tabs.yaml"
    path.write_text("version: 1\nrules:\n  - id: x\n    triggers:\n\t- {type: timer, every: 1m}\n")
    assert main(["validate", str(path)]) == 1
    assert f"{path.as_posix()}:5:1: rule \"x\": invalid YAML: {TAB}" in capsys.readouterr().out


def test_a_test_file_gets_the_same_words(tmp_path):
    path = tmp_path / "t.test.yaml"
    path.write_text("rules: [r.yaml]\ninputs:\n\t- prices: {symbol: XBTUSD, series: \"1 2\"}\n")
    [error] = load_test_file(path).errors
    assert (error.line, error.column, error.message) == (3, 1, f"invalid YAML: {TAB}")
