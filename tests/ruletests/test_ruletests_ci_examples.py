"""The pre-commit hooks and the example GitHub Actions workflow run commands that exist and
pass on this repository's own rules."""

import shlex
from pathlib import Path

import pytest
import yaml

from rules_engine.cli import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def at_repository_root(monkeypatch):
    monkeypatch.chdir(ROOT)


def test_pre_commit_hooks_validate_and_test_the_rules(capsys):
    hooks = {hook["id"]: hook for hook in yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())}
    assert set(hooks) == {"rules-engine-validate", "rules-engine-test"}
    for hook in hooks.values():
        assert {"id", "name", "entry", "language"} <= set(hook) and hook["language"] == "python"
        program, *command = shlex.split(hook["entry"])
        assert program == "rules-engine"
        assert main(command + hook["args"]) == 0, capsys.readouterr().out
    example = yaml.safe_load((ROOT / "examples" / "pre-commit" / ".pre-commit-config.yaml").read_text())
    used = {hook["id"] for repo in example["repos"] for hook in repo["hooks"]}
    assert used == set(hooks)


def test_the_workflow_runs_validate_and_test_and_they_pass(capsys, tmp_path):
    workflow = yaml.safe_load((ROOT / "examples" / "github-actions" / "rules-ci.yml").read_text())
    runs = [step["run"] for job in workflow["jobs"].values() for step in job["steps"] if "run" in step]
    commands = [shlex.split(run) for run in runs if run.startswith("rules-engine ")]
    assert [c[1] for c in commands] == ["validate", "test", "replay"]
    for command in commands[:2]:
        command = [str(tmp_path / "junit.xml") if arg == "rule-tests.xml" else arg for arg in command]
        assert main(command[1:]) == 0, capsys.readouterr().out
    assert (tmp_path / "junit.xml").read_text().startswith('<?xml version="1.0" encoding="UTF-8"?>')
