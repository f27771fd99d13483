"""The pre-commit hooks and the example GitHub Actions workflow run commands that exist and
pass on this repository's own rules."""

import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from rules_engine import __version__
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


def test_the_workflow_validates_strictly():
    workflow = yaml.safe_load((ROOT / "examples" / "github-actions" / "rules-ci.yml").read_text())
    runs = [step["run"] for job in workflow["jobs"].values() for step in job["steps"] if "run" in step]
    [validate] = [shlex.split(run) for run in runs if run.startswith("rules-engine validate")]
    assert "--strict" in validate and "--format" in validate


def pinned_revisions() -> dict[str, str]:
    """The rules-engine revision each example (and the docs' copy of the pre-commit one) pins."""
    pre_commit = yaml.safe_load((ROOT / "examples" / "pre-commit" / ".pre-commit-config.yaml").read_text())
    workflow = (ROOT / "examples" / "github-actions" / "rules-ci.yml").read_text()
    docs = (ROOT / "docs" / "rule-tests-and-replay.md").read_text()
    return {
        "pre-commit": pre_commit["repos"][0]["rev"],
        "workflow": re.search(r'rules-engine @ git\+\S+@([^"\s]+)"', workflow).group(1),
        "docs": re.search(r"^\s+rev: (\S+)", docs, re.MULTILINE).group(1),
    }


def test_the_examples_pin_a_release_the_release_notes_describe():
    pins = pinned_revisions()
    assert len(set(pins.values())) == 1, pins
    revision = pins["pre-commit"]
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert version == __version__
    # a release tag: the one of this version, whose creation the release notes describe
    assert revision == f"v{version}"
    notes = (ROOT / "docs" / "releases.md").read_text()
    assert re.search(rf"^## {re.escape(revision)}$", notes, re.MULTILINE)
    assert f'git tag -a {revision} -m "rules-engine {version}"' in notes


def test_the_hooks_install_the_package_without_extras_and_need_no_chart_library():
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert all("additional_dependencies" not in hook for hook in hooks)
    # validate and test, as the hooks run them, with the chart library (and numpy) unimportable
    script = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('matplotlib', 'numpy'):\n"
        "            raise ImportError(f'{name} is not installed')\n"
        "sys.meta_path.insert(0, Block())\n"
        "from rules_engine.cli import main\n"
        "codes = [main(['validate', 'rules/']), main(['test', 'rules/'])]\n"
        "assert 'matplotlib' not in sys.modules and 'numpy' not in sys.modules\n"
        "sys.exit(max(codes))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "valid:" in done.stdout and "passed, 0 failed" in done.stdout
