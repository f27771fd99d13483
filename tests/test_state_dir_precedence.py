"""Where the engine keeps its state: `--state-dir` > $RULES_ENGINE_STATE_DIR > the config's
`state_dir` > ./state. In the container the variable names the /state volume, so a config
written for a host must not move the state out of it."""

from __future__ import annotations

from pathlib import Path

import pytest

from rules_engine.cli import main
from rules_engine.config import load_config, parse_config
from rules_engine.service.killswitch import kill_file


@pytest.fixture
def dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RULES_ENGINE_STATE_DIR", raising=False)
    found = {name: tmp_path / name for name in ("flag", "env", "config", "state")}
    for path in found.values():
        path.mkdir()
    (tmp_path / "engine.yaml").write_text(f"version: 1\nstate_dir: {found['config']}\n")
    return found


def engaged(dirs: dict[str, Path]) -> list[str]:
    """The state dirs holding a KILL file (then removed), by name."""
    names = [name for name, path in dirs.items() if kill_file(path).exists()]
    for name in names:
        kill_file(dirs[name]).unlink()
    return names


def test_flag_then_env_then_config_then_default(dirs, monkeypatch):
    assert main(["kill"]) == 0 and engaged(dirs) == ["state"]
    assert main(["kill", "--config", "engine.yaml"]) == 0 and engaged(dirs) == ["config"]
    monkeypatch.setenv("RULES_ENGINE_STATE_DIR", str(dirs["env"]))
    assert main(["kill", "--config", "engine.yaml"]) == 0 and engaged(dirs) == ["env"]
    assert main(["kill"]) == 0 and engaged(dirs) == ["env"]
    assert main(["kill", "--config", "engine.yaml", "--state-dir", str(dirs["flag"])]) == 0
    assert engaged(dirs) == ["flag"]


def test_the_config_reads_the_variable_over_its_own_setting(dirs, monkeypatch):
    assert load_config("engine.yaml").state_dir == dirs["config"]
    monkeypatch.setenv("RULES_ENGINE_STATE_DIR", "/state")
    assert load_config("engine.yaml").state_dir == Path("/state")
    assert parse_config({}).state_dir == Path("/state")
    monkeypatch.setenv("RULES_ENGINE_STATE_DIR", "  ")  # set but empty: as if unset
    assert load_config("engine.yaml").state_dir == dirs["config"]
    assert parse_config({}).state_dir == Path("state")


def test_the_container_image_sets_the_variable_to_its_volume():
    dockerfile = (Path(__file__).resolve().parents[1] / "Dockerfile").read_text()
    assert "RULES_ENGINE_STATE_DIR=/state" in dockerfile and 'VOLUME ["/state"]' in dockerfile
    # and pins the port its EXPOSE and health check name: a host config's server.port made it unhealthy
    [cmd] = [line for line in dockerfile.splitlines() if line.startswith("CMD ")]
    assert '"--port", "8080"' in cmd and "EXPOSE 8080" in dockerfile and "127.0.0.1:8080/healthz" in dockerfile
