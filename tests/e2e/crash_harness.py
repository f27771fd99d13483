"""The crash suite's engine: `python -m rules_engine run` as a child process that a crash
point (`rules_engine.crashpoints`, `RULES_ENGINE_CRASH_AT`) kills with SIGKILL at a named
step, against the simulator of the test's own process (which the kill does not touch)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable

import requests
import yaml

from e2e_harness import E2E
from rules_engine.audit import verify
from rules_engine.state import StateStore, database_path

REPO = Path(__file__).resolve().parents[2]


def wait(predicate: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"{what} not met within {timeout} s")


STARTED: list[subprocess.Popen] = []
"""Every child started, so a failed test leaves none running (`kill_leftovers`)."""


def kill_leftovers() -> None:
    while STARTED:
        process = STARTED.pop()
        if process.poll() is None:
            process.kill()
            process.wait(10)


class CrashEngine:
    """One `rules-engine run --live` child; `crash_at` names the crash point that kills it."""

    def __init__(self, e2e: E2E, config: dict[str, Any], crash_at: str | None = None,
                 env: dict[str, str] | None = None) -> None:
        config_path = e2e.tmp / "engine.yaml"
        config_path.write_text(yaml.safe_dump(config))
        self.log = e2e.tmp / f"engine-{time.monotonic_ns()}.log"
        environ = {**os.environ, **e2e.environ, "PYTHONPATH": str(REPO), **(env or {})}
        environ.pop("RULES_ENGINE_CRASH_AT", None)
        if crash_at:
            environ["RULES_ENGINE_CRASH_AT"] = crash_at
        command = [sys.executable, "-m", "rules_engine", "run", str(e2e.rules_dir), "--config", str(config_path),
                   "--state-dir", str(e2e.state_dir), "--port", "0", "--live"]
        with self.log.open("w") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=environ, cwd=e2e.tmp)
        STARTED.append(self.process)
        self.url = ""
        self.state_dir = e2e.state_dir

    def text(self) -> str:
        return self.log.read_text()

    def start(self, symbols: int = 1) -> CrashEngine:
        def port() -> str | None:
            found = re.search(r"listening on (http://127\.0\.0\.1:\d+)", self.text())
            if self.process.poll() is not None:
                raise AssertionError(f"engine exited with {self.process.returncode}:\n{self.text()}")
            return found.group(1) if found else None

        self.url = wait(port, 30, "engine start")
        if symbols:
            wait(lambda: self.health()["ok"] and self.health()["feeds"]["spot"]["subscribed"] == symbols,
                 what="feeds subscribed")
        return self

    def health(self) -> dict[str, Any]:
        return requests.get(f"{self.url}/healthz", timeout=5).json()

    def ticks(self) -> float:
        text = requests.get(f"{self.url}/metrics", timeout=5).text
        found = re.search(r'^rules_engine_ticks_total\{market="spot"\} (\S+)$', text, re.M)
        return float(found.group(1)) if found else 0.0

    def price(self, e2e: E2E, symbol: str, price: str) -> None:
        """Publish a price and wait until the engine has taken the tick."""
        seen = self.ticks()
        e2e.sim.set_price(symbol, Decimal(price))
        wait(lambda: self.ticks() > seen, what=f"tick {symbol} {price} taken")

    def killed(self, timeout: float = 30.0) -> None:
        """Wait for the crash point's SIGKILL."""
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
            kinds = [(r["kind"], r["rule_id"]) for r in audit_of(self.state_dir)][-30:]
            raise AssertionError(f"the crash point was not reached in {timeout} s:\n{self.text()}\n{kinds}") from None
        assert code == -signal.SIGKILL, f"expected SIGKILL, got {code}:\n{self.text()}"

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(30)


def audit(e2e: E2E, kind: str | None = None) -> list[dict[str, Any]]:
    return [r for r in audit_of(e2e.state_dir) if kind is None or r["kind"] == kind]


def audit_of(state_dir: Path) -> list[dict[str, Any]]:
    path = state_dir / "audit.jsonl"
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            pass  # a torn last line of a killed process
    return records


def orders_per_decision(e2e: E2E) -> Counter[str]:
    """How many orders the simulator holds for each decision of this engine (by cl_ord_id);
    an order no decision knows counts under "?"."""
    mine = [o for o in e2e.spot_orders() if o.account == e2e.account.api_key]
    counts: Counter[str] = Counter()
    with StateStore(database_path(e2e.state_dir)) as store:
        for order in mine:
            decision = store.get_decision(order.cl_ord_id) if order.cl_ord_id else None
            counts[decision.decision_id if decision else "?"] += 1
    return counts


def dropped_in_progress(e2e: E2E) -> list[dict[str, Any]]:
    return [r for r in audit(e2e, "dropped") if "in progress" in str(r["data"].get("reason"))]


def audit_ok(e2e: E2E) -> bool:
    return verify(e2e.state_dir / "audit.jsonl").ok
