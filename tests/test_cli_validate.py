"""`rules-engine validate` end to end: a few runs as a subprocess, the rest in-process."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rules_engine import cli

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "rules" / "fixtures"

VALID = """
version: 1
rules:
  - id: ok
    triggers: [{type: timer, every: 1m}]
    actions: [{type: cancel_all}]
"""


def run_module(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rules_engine", "validate", *args], cwd=cwd, capture_output=True, text=True, timeout=60
    )


def test_subprocess_examples_are_valid():
    done = run_module("rules/")
    assert done.returncode == 0, done.stdout + done.stderr
    rule_files = [p for p in (REPO / "rules").glob("*.yaml") if not p.name.endswith(".test.yaml")]
    assert done.stdout.strip().splitlines()[-1].startswith(f"valid: {len(rule_files)} files, ")


def test_subprocess_invalid_file_exits_1_with_positions():
    done = run_module("tests/rules/fixtures/many_errors.yaml")
    assert done.returncode == 1
    first = done.stdout.splitlines()[0]
    assert first == 'tests/rules/fixtures/many_errors.yaml:5:15: rule "btc-dip-buy": unknown trigger type "pricee" (did you mean "price"?)'
    assert done.stdout.strip().endswith("invalid: 1 file, 3 rules: 5 errors, 0 warnings")


def test_subprocess_missing_path_is_a_usage_error():
    done = run_module("rules/", "no/such/place.yaml")
    assert done.returncode == 2
    assert "no such file or folder: no/such/place.yaml" in done.stderr
    assert done.stdout == ""


def test_subprocess_billion_laughs_is_rejected():
    done = run_module(str(FIXTURES / "billion_laughs.yaml"))
    assert done.returncode == 1 and "yaml" not in done.stderr.lower()
    assert "aliases expand this file" in done.stdout


def test_folder_with_files_and_json_format(tmp_path, capsys):
    (tmp_path / "good.yaml").write_text(VALID)
    (tmp_path / "nested").mkdir()
    (tmp_path / "nested" / "bad.yml").write_text(VALID.replace("id: ok", "id: bad").replace("every: 1m", "evry: 1m"))
    (tmp_path / "notes.txt").write_text("not a rule file")
    (tmp_path / ".hidden.yaml").write_text("!!python/object:os.system")
    assert cli.main(["validate", str(tmp_path), "--format", "json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["valid"] is False and report["rules"] == 2
    assert [Path(f).name for f in report["files"]] == ["good.yaml", "bad.yml"]
    [error] = report["errors"]
    assert error == {
        "file": (tmp_path / "nested" / "bad.yml").as_posix(),
        "line": 5,
        "column": 30,
        "rule_id": "bad",
        "severity": "error",
        "code": "unknown-key",
        "message": 'unknown key "evry" in timer trigger',
        "hint": 'did you mean "every"?',
    }
    assert report["warnings"] == []


def test_github_annotations(tmp_path, capsys):
    path = tmp_path / "r.yaml"
    path.write_text(VALID.replace("type: timer", "type: timr"))
    warn = tmp_path / "w.yaml"
    warn.write_text((FIXTURES / "warnings_only.yaml").read_text())
    assert cli.main(["validate", str(path), str(warn), "--format", "github"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (
        f"::error file={path.as_posix()},line=5,col=23,title=rules-engine unknown-type::"
        'rule "ok": unknown trigger type "timr" (did you mean "timer"?)'
    )
    assert lines[1].startswith(f"::warning file={warn.as_posix()},line=4,col=5,title=rules-engine no-cooldown::")
    assert lines[-1] == "invalid: 2 files, 2 rules: 1 error, 2 warnings"


def test_github_annotation_escapes_special_characters():
    from rules_engine.commands.validate import github_annotation
    from rules_engine.rules import Diagnostic

    line = github_annotation(Diagnostic("a,b:c.yaml", 1, 2, None, "50% done\nnext line"))
    assert line == "::error file=a%2Cb%3Ac.yaml,line=1,col=2,title=rules-engine invalid::50%25 done%0Anext line"


def test_warnings_pass_unless_strict(capsys):
    path = str(FIXTURES / "warnings_only.yaml")
    assert cli.main(["validate", path]) == 0
    out = capsys.readouterr().out
    assert "warning: rule \"contradicted\": the guard \"price < 65000\" can never hold" in out
    assert out.strip().endswith("valid: 1 file, 1 rule: 0 errors, 2 warnings")
    assert cli.main(["validate", "--strict", path]) == 1
    assert capsys.readouterr().out.strip().endswith("invalid: 1 file, 1 rule: 0 errors, 2 warnings")


def test_folder_without_rule_files_is_a_usage_error(tmp_path, capsys):
    (tmp_path / "readme.md").write_text("# nothing")
    assert cli.main(["validate", str(tmp_path)]) == 2
    assert "no rule files" in capsys.readouterr().err


def test_no_paths_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["validate"])
    assert exit_info.value.code == 2


def test_pairs_snapshot_option(tmp_path, capsys):
    snapshot = tmp_path / "pairs.json"
    snapshot.write_text(json.dumps({"error": [], "result": {
        "XXBTZUSD": {"altname": "XBTUSD", "wsname": "XBT/USD", "base": "XXBT", "quote": "ZUSD"}}}))
    rules = tmp_path / "r.yaml"
    rules.write_text(textwrap.dedent("""
        version: 1
        rules:
          - id: eth
            triggers: [{type: price, symbol: ETH/USD, crosses_above: 5}]
            actions: [{type: cancel_all}]
        """))
    assert cli.main(["validate", str(rules)]) == 0
    capsys.readouterr()
    assert cli.main(["validate", "--pairs", str(snapshot), str(rules)]) == 1
    assert 'unknown Kraken pair "ETH/USD"' in capsys.readouterr().out
    assert cli.main(["validate", "--pairs", str(tmp_path / "missing.json"), str(rules)]) == 2
    assert "cannot read the pair snapshot" in capsys.readouterr().err


def test_schema_errors_do_not_hide_other_problems_of_the_same_rule(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(textwrap.dedent("""\
        version: 1
        rules:
          - id: y
            triggers: [{type: timer, every: 5 minutes}]
            when: "balance('ZUSD') > 10 and prise > 3"
            actions: [{type: place_order, pair: BTCUSDX, side: buy, ordertype: limit, volume: 1}]
        """))
    assert cli.main(["validate", str(path)]) == 1
    name = path.as_posix()
    assert capsys.readouterr().out.splitlines() == [
        f'{name}:4:37: rule "y": expected a duration such as 500ms, 30s, 5m, 1h or 1d (did you mean "5m"?)',
        f"{name}:5:37: rule \"y\": invalid expression: unknown name 'prise' (did you mean 'price'?)",
        f'{name}:6:15: rule "y": limit, iceberg, stop, take-profit and trailing orders need price:',
        f'{name}:6:41: rule "y": unknown Kraken pair "BTCUSDX" (did you mean "BTC/USD"?)',
        "invalid: 1 file, 1 rule: 4 errors, 0 warnings",
    ]


def test_subprocess_checks_signal_fields_against_your_own_payload_schema(tmp_path):
    """A payload schema kept beside the rules (`RULES_ENGINE_SIGNAL_SCHEMAS`), not in the package."""
    schemas = tmp_path / "signal-schemas"
    schemas.mkdir()
    (schemas / "mybot.schema.json").write_text(json.dumps({
        "type": "object", "properties": {"side": {"enum": ["long", "short"]}, "size": {"type": "number"}}}))
    rules = tmp_path / "bot.yaml"
    rules.write_text(textwrap.dedent("""\
        version: 1
        rules:
          - id: bot
            triggers: [{type: signal, source: mybot, where: "signal.sid == 'lon'"}]
            actions: [{type: log, message: "{signal.size}"}]
        """))
    command = [sys.executable, "-m", "rules_engine", "validate", "--strict", str(rules)]
    without = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert without.returncode == 0, without.stdout + without.stderr  # no schema known: the payload is free
    env = {**__import__("os").environ, "RULES_ENGINE_SIGNAL_SCHEMAS": "signal-schemas"}  # relative to the cwd
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 1, done.stdout + done.stderr
    assert 'the "mybot" payload schema has no field "sid"' in done.stdout
    assert 'did you mean "side"?' in done.stdout
    assert "bot.yaml:4:" in done.stdout
    env["RULES_ENGINE_SIGNAL_SCHEMAS"] = "signal-schema"  # a typo: not a folder
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 2
    assert done.stderr == (f"rules-engine validate: RULES_ENGINE_SIGNAL_SCHEMAS names {tmp_path / 'signal-schema'}, "
                           "not a folder (it holds your signal payload schemas, <source>.schema.json)\n")
