"""The cluster deployment examples (`deploy/cluster/docker-compose.yml`, the systemd templates
`deploy/rules-engine@.service`, `deploy/rules-engine-worker@.service` and
`deploy/rules-engine-intake@.service`) run real commands: every command line parses with the
CLI's own parser, every file they mount exists and is valid (worker config, engine configs,
subscriptions, rules), and the subscriptions name exactly the workers' keys."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import yaml

from rules_engine.cli import build_parser, main
from rules_engine.config import load_config
from rules_engine.rules import load_rules
from rules_engine.service.subscriptions import load_subscriptions
from rules_engine.service.worker_config import load_worker_config

REPO = Path(__file__).resolve().parents[1]
CLUSTER = REPO / "deploy" / "cluster"
COMPOSE = yaml.safe_load((CLUSTER / "docker-compose.yml").read_text())


def parses(argv: list[str]) -> str:
    """The subcommand `argv` runs (the test fails if the CLI refuses it: unknown command or option)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse's way of refusing
        raise AssertionError(f"rules-engine {shlex.join(argv)}: refused by the CLI ({exc.code})") from None
    assert callable(getattr(args, "func", None)), argv
    return argv[0]


def mounts(service: dict) -> dict[str, Path]:
    """In-container path -> file in this folder, for the service's bind mounts."""
    found = {}
    for volume in service.get("volumes", []):
        source, target, *_ = volume.split(":")
        if source.startswith("./"):
            found[target] = CLUSTER / source[2:]
    return found


WORKERS = {name: s for name, s in COMPOSE["services"].items() if name.startswith("worker-")}


def test_the_compose_file_runs_postgresql_two_workers_and_an_intake_with_real_commands() -> None:
    services = COMPOSE["services"]
    assert services["postgres"]["image"].startswith("postgres:")
    assert len(WORKERS) == 2 and services["intake"]["deploy"]["replicas"] == 2
    commands = {name: parses(s["command"]) for name, s in services.items() if "command" in s}
    assert commands == {"intake": "intake", **{name: "worker" for name in WORKERS}}
    for name in WORKERS:  # Docker's default 10 s would SIGKILL a worker whose cells still drain (20 s)
        assert services[name]["stop_grace_period"] == "30s", name
    for name, service in services.items():
        if "build" in service:
            assert (CLUSTER / service["build"] / "Dockerfile").is_file(), name
            assert "RULES_ENGINE_STORE_PASSWORD_FILE" in service["environment"], name  # never in the config
        for path in mounts(service).values():
            assert path.exists(), f"{name} mounts {path}, which is not in the repository"


def test_the_workers_and_the_subscriptions_agree_and_are_valid() -> None:
    keys = set()
    for service in WORKERS.values():
        argv = service["command"]
        files = mounts(service)
        config = argv[argv.index("--config") + 1]
        worker = load_worker_config(files[config])  # and every engine config it names
        assert [cell.config.store.url for cell in worker.cells if cell.config.store] == \
            ["postgresql://engine@postgres:5432/rules"] * 2
        keys.update(cell.key for cell in worker.cells)
        inside = {str(Path(config).parent / Path(path).relative_to(files[config].parent)): Path(path)
                  for cell in worker.cells for path in cell.rules}  # each cell's rules as the container sees them
        assert all(files[target] == host for target, host in inside.items())  # mounted there
        for cell in worker.cells:
            result = load_rules(cell.rules)
            assert result.errors == [] and result.rule_count == 1
    intake = COMPOSE["services"]["intake"]["command"]
    assert intake[intake.index("--store") + 1] == "postgresql://engine@postgres:5432/rules"
    subscriptions = load_subscriptions(mounts(COMPOSE["services"]["intake"])[intake[intake.index("--subscriptions")
                                                                                   + 1]])
    assert subscriptions.keys == sorted(keys) == ["acct-1", "acct-2"]
    secret = subscriptions.providers["signalco"].source.secret_file
    assert secret is not None and Path(secret).name in COMPOSE["secrets"]


@pytest.mark.parametrize(("unit", "instance"), [("rules-engine@.service", "acct-1"),
                                                ("rules-engine-worker@.service", "main"),
                                                ("rules-engine-intake@.service", "8090"),
                                                ("rules-engine.service", "")])
def test_the_systemd_units_run_real_commands(unit: str, instance: str) -> None:
    lines = (REPO / "deploy" / unit).read_text().splitlines()
    commands = [line.split("=", 1)[1] for line in lines if line.startswith(("ExecStart=", "ExecStartPre="))]
    assert commands
    for command in commands:
        binary, *argv = shlex.split(command.replace("%i", instance))
        assert binary.endswith("/bin/rules-engine")
        parses(argv)
    if instance:
        assert any("%i" in line for line in lines if line.startswith("ExecStart="))


def test_the_shipped_worker_config_checks_clean_from_its_folder(capsys) -> None:
    """The command its comment gives, run where the file is (its rules resolve next to it, as in the containers)."""
    assert main(["worker", "--config", str(CLUSTER / "worker.yaml"), "--check"]) == 0
    assert "2 cells: acct-1, acct-2" in capsys.readouterr().out


def test_the_image_the_compose_file_builds_has_the_postgresql_driver() -> None:
    """Every service built here uses the PostgreSQL store, which needs the `postgres` extra (psycopg):
    an image of the plain package would refuse to start every worker and intake."""
    for name, service in COMPOSE["services"].items():
        if "build" in service:
            dockerfile = (CLUSTER / service["build"] / "Dockerfile").read_text()
            installs = [line for line in dockerfile.splitlines() if "pip install" in line]
            assert any("[postgres]" in line for line in installs), (name, installs)
