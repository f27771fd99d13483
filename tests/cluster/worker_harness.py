"""`rules-engine worker` child processes for the cluster tests and `bench.worker_fanout`: one
engine config per key (credentials from the key's own env names), one worker config with every
key, workers started with `--live` against the simulator of the calling process."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import requests
import yaml
from fanout_harness import FanoutWorld

from rules_engine.sim import Account

REPO = Path(__file__).resolve().parents[2]


def write_worker_config(w: FanoutWorld, accounts: dict[str, Account]) -> tuple[Path, dict[str, str]]:
    """One engine config per key (credentials from the key's own env names), one worker config."""
    home = w.tmp / "worker-config"
    home.mkdir()
    cells, env = [], {}
    for n, key in enumerate(sorted(accounts), 1):
        config = {"version": 1, "mode": "live",
                  "kraken": {"simulator": w.sim.endpoints.spot_rest, "api_key_env": f"KEY_{n}_API",
                             "api_secret_env": f"KEY_{n}_SECRET"},
                  "dead_man_switch": {"enabled": False}, "balance_cache": "0s",
                  "store": {"url": w.dsn, "key": key, "standby": True, "exclusive": True, "lease_ttl": "2s"}}
        (home / f"engine-{key}.yaml").write_text(yaml.safe_dump(config))
        cells.append({"config": f"engine-{key}.yaml", "rules": [str(w.rules_dir)]})
        env[f"KEY_{n}_API"], env[f"KEY_{n}_SECRET"] = accounts[key].api_key, accounts[key].secret
    path = home / "worker.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "server": {"host": "127.0.0.1", "port": 0}, "cells": cells,
                                    "private_feeds": {"connects_per_10min": 10000}}))  # the simulator bans no IP
    return path, env


class WorkerProcess:
    def __init__(self, name: str, config: Path, env: dict[str, str], home: Path) -> None:
        home.mkdir()
        self.log = home / "worker.log"
        environ = {**os.environ, **env, "PYTHONPATH": str(REPO), "RULES_ENGINE_RUNTIME_DIR": str(home / "run")}
        command = [sys.executable, "-m", "rules_engine", "worker", "--config", str(config), "--live"]
        with self.log.open("w") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=environ, cwd=home)
        self.name = name
        self.url = ""

    def listening(self) -> str | None:
        if self.process.poll() is not None:
            raise AssertionError(f"worker {self.name} exited with {self.process.returncode}:\n"
                                 f"{self.log.read_text()[-3000:]}")
        found = re.search(r"listening on (http://127\.0\.0\.1:\d+)", self.log.read_text())
        if found:
            self.url = found.group(1)
        return self.url or None

    def readyz(self) -> dict[str, Any]:
        return requests.get(f"{self.url}/readyz", timeout=30).json()

    def holding(self) -> list[str]:
        return self.readyz()["holding"]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
