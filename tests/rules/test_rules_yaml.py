"""The YAML layer: safe, bounded loading with positions."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from rules_engine.rules import load_rules
from rules_engine.rules.yaml_source import MAX_FILE_BYTES, read_source

FIXTURES = Path(__file__).parent / "fixtures"

TIMER_RULE = """
version: 1
rules:
  - id: r1
    triggers:
      - type: timer
        every: 1m
    actions:
      - type: cancel_all
"""


def test_python_object_tag_is_an_error_and_nothing_is_constructed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = load_rules([FIXTURES / "python_tag.yaml"])
    assert result.ruleset is None
    [error] = result.errors
    assert (error.line, error.column, error.code, error.rule_id) == (4, 18, "yaml-tag", "sneaky")
    assert '"!!python/object/apply:os.system" is not allowed' in error.message
    assert not (tmp_path / "pwned.txt").exists()


def test_custom_and_non_data_tags_are_errors(load):
    result = load(
        """
        version: 1
        rules:
          - id: r1
            description: !include other.yaml
            triggers: !!set {a, b}
            actions: !!binary aGVsbG8=
        """
    )
    found = {(d.line, d.code) for d in result.errors}
    assert found == {(4, "yaml-tag"), (5, "yaml-tag"), (6, "yaml-tag")}
    assert '"!include"' in result.errors[0].message


def test_duplicate_keys_are_errors_with_both_lines(load):
    result = load(
        """
        version: 1
        rules:
          - id: r1
            triggers:
              - type: timer
                every: 1m
                every: 2m
            actions:
              - type: cancel_all
        """
    )
    [error] = result.errors
    assert (error.line, error.column, error.code) == (7, 9, "yaml-duplicate-key")
    assert error.message == 'duplicate key "every" (first written on line 6)'
    assert error.rule_id == "r1"


def test_billion_laughs_is_rejected_without_expanding():
    result = load_rules([FIXTURES / "billion_laughs.yaml"])
    [error] = result.errors
    assert error.code == "yaml-alias-bomb"
    assert error.line == 8  # the first alias level that crosses the bound
    assert result.ruleset is None


def test_recursive_alias_is_rejected(load):
    result = load("version: 1\nrules: &r [*r]\n")
    [error] = result.errors
    assert error.code == "yaml-recursive-alias"


def test_deep_nesting_is_rejected(load):
    deep = "[" * 80 + "]" * 80
    result = load(f"version: 1\nrules: {deep}\n")
    [error] = result.errors
    assert error.code == "yaml-too-deep"


def test_oversized_file_is_rejected_before_parsing(tmp_path):
    path = tmp_path / "huge.yaml"
    path.write_bytes(b"# " + b"x" * MAX_FILE_BYTES + b"\n")
    [error] = load_rules([path]).errors
    assert error.code == "file-too-large"
    assert (error.line, error.column) == (1, 1)


def test_syntax_error_position_and_rule(load):
    result = load(
        """
        version: 1
        rules:
          - id: broken
            triggers: [
            actions: []
        """
    )
    [error] = result.errors
    assert error.code == "yaml-syntax"
    assert error.line == 6 and error.rule_id == "broken"  # libyaml reports the end of the file
    assert error.message.startswith("invalid YAML:")


def test_empty_file_and_non_utf8_file(tmp_path):
    (tmp_path / "empty.yaml").write_text("# only a comment\n")
    (tmp_path / "latin1.yaml").write_bytes(b"version: 1\nrules: []\n# caf\xe9\n")
    codes = {d.file.rsplit("/", 1)[-1]: d.code for d in load_rules([tmp_path]).errors}
    assert codes == {"empty.yaml": "empty-file", "latin1.yaml": "not-utf8"}


def test_two_documents_in_one_file_is_an_error(load):
    result = load("version: 1\nrules: []\n---\nversion: 1\nrules: []\n")
    [error] = result.errors
    assert error.code == "yaml-syntax" and error.line == 3


def test_numbers_keep_their_written_digits():
    document, errors = read_source(
        b"a: 0.1000000000000000055511151231257827\nb: 70000.10\nc: 012\nd: 5:1\ne: 1_000\nf: 0x1F\n", "x.yaml"
    )
    assert errors == []
    assert document.data == {
        "a": Decimal("0.1000000000000000055511151231257827"),
        "b": Decimal("70000.10"),
        "c": 12,  # YAML 1.2: not octal
        "d": "5:1",  # YAML 1.1 sexagesimal stays text (leverage "5:1")
        "e": 1000,
        "f": 31,
    }
    assert str(document.data["b"]) == "70000.10"


def test_infinite_numbers_are_errors():
    _, errors = read_source(b"a: .inf\nb: -.Inf\nc: .nan\n", "x.yaml")
    assert [(e.line, e.code) for e in errors] == [(1, "yaml-number"), (2, "yaml-number"), (3, "yaml-number")]


def test_merge_keys_work_and_explicit_keys_win(load):
    result = load(
        """
        version: 1
        x-buy: &buy
          type: place_order
          pair: XBTUSD
          side: buy
          ordertype: market
          volume: 0.01
        rules:
          - id: merged
            cooldown: 1m
            triggers: [{type: timer, every: 1m}]
            actions:
              - <<: *buy
                volume: 0.02
        """
    )
    # x-buy is not part of the format: the schema reports it, and the merged rule still builds
    assert [d.code for d in result.errors] == ["unknown-key"]
    assert result.errors[0].line == 2


def test_merged_action_builds_with_override(write):
    path = write(
        "r.yaml",
        """
        version: 1
        rules:
          - id: a
            cooldown: 1m
            triggers: [{type: timer, every: 1m}]
            actions:
              - &buy {type: place_order, pair: XBTUSD, side: buy, ordertype: market, volume: 0.01}
              - <<: *buy
                volume: 0.02
        """,
    )
    result = load_rules([path])
    assert result.errors == []
    first, second = result.ruleset.rules[0].actions
    assert (first.volume, second.volume, second.pair) == (Decimal("0.01"), Decimal("0.02"), "XBTUSD")


def test_positions_are_recorded_for_keys_and_values():
    document, _ = read_source(TIMER_RULE.lstrip("\n").encode(), "r.yaml")
    assert document.position(("rules", 0, "triggers", 0, "every")) == (6, 16)
    assert document.key_position(("rules", 0, "triggers", 0, "every")) == (6, 9)
    assert document.position(("rules", 0, "actions", 0, "missing")) == (8, 9)  # nearest parent
    assert document.rule_id_at(("rules", 0, "actions")) == "r1"


def test_file_hash_is_sha256_of_bytes(write):
    import hashlib

    path: Path = write("r.yaml", TIMER_RULE)
    result = load_rules([path])
    rule = result.ruleset.rules[0]
    assert rule.source.file_hash == hashlib.sha256(path.read_bytes()).hexdigest()
    assert rule.triggers[0].where.file_hash == rule.source.file_hash
