"""`rules-engine run` as a real process: exit codes, SIGTERM, SIGHUP, SIGUSR1,
`rules-engine kill`, and a restart after `kill -9` that sends no order twice."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import os
import re
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable

import pytest
import requests
import yaml

from e2e_harness import E2E
from rules_engine.audit import verify

REPO = Path(__file__).resolve().parents[2]


def wait(predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"condition not met within {timeout} s")


class Engine:
    """A `python -m rules_engine run` child with its log in a file."""

    def __init__(self, e2e: E2E, *extra: str, config: dict[str, Any] | None = None) -> None:
        config_path = e2e.tmp / "engine.yaml"
        config_path.write_text(yaml.safe_dump(config or e2e.config_data()))
        self.log = e2e.tmp / f"engine-{time.monotonic_ns()}.log"
        env = {**os.environ, **e2e.environ, "PYTHONPATH": str(REPO)}
        command = [sys.executable, "-m", "rules_engine", "run", str(e2e.rules_dir), "--config", str(config_path),
                   "--state-dir", str(e2e.state_dir), "--port", "0", *extra]
        with self.log.open("w") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=e2e.tmp)
        self.url: str | None = None

    def text(self) -> str:
        return self.log.read_text()

    def wait_started(self) -> str:
        def port() -> str | None:
            found = re.search(r"listening on (http://127\.0\.0\.1:\d+)", self.text())
            if self.process.poll() is not None:
                raise AssertionError(f"engine exited with {self.process.returncode}:\n{self.text()}")
            return found.group(1) if found else None

        self.url = wait(port, 20)
        return self.url

    def health(self) -> dict[str, Any]:
        return requests.get(f"{self.url}/healthz", timeout=5).json()

    def ticks(self) -> float:
        text = requests.get(f"{self.url}/metrics", timeout=5).text
        found = re.search(r'^rules_engine_ticks_total\{market="spot"\} (\S+)$', text, re.M)
        return float(found.group(1)) if found else 0.0

    def stop(self, signum: int = signal.SIGTERM) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signum)
        return self.process.wait(20)


def audit(e2e: E2E, kind: str | None = None) -> list[dict[str, Any]]:
    path = e2e.state_dir / "audit.jsonl"
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            pass  # a torn last line of a killed process
    return [r for r in records if kind is None or r["kind"] == kind]


UP = """
- id: up
  triggers: [{type: price, symbol: XBTUSD, crosses_above: 70000}]
  actions: [{type: place_order, pair: XBTUSD, side: buy, ordertype: limit, volume: 0.01, price: 60000}]
- id: down
  triggers: [{type: price, symbol: XBTUSD, crosses_below: 69000}]
  actions: [{type: place_order, pair: XBTUSD, side: buy, ordertype: limit, volume: 0.01, price: 59000}]
"""


def test_invalid_rules_and_live_refusal_exit_1_with_a_reason(e2e: E2E) -> None:
    e2e.write_rules("""
        - id: broken
          triggers: [{type: price, symbol: NOPE, crosses_above: 1}]
          actions: [{type: log, message: x}]
    """)
    engine = Engine(e2e)
    assert engine.process.wait(20) == 1
    assert "refusing to start" in engine.text() and "NOPE" in engine.text()
    e2e.write_rules(UP)
    engine = Engine(e2e, config=e2e.config_data(mode="live"))
    assert engine.process.wait(20) == 1
    assert "--live was not given" in engine.text()


def test_a_second_engine_on_the_state_dir_is_refused_saying_what_to_do(e2e: E2E) -> None:
    """Two engines on one state dir: the second says the state dir is in use and what to do,
    not only that the audit log 'is open for writing in another process'."""
    e2e.write_rules(UP)
    first = Engine(e2e)
    first.wait_started()
    second = Engine(e2e)
    assert second.process.wait(20) == 1
    assert f"refusing to start: the state dir {e2e.state_dir} is in use: another rules-engine" in second.text()
    assert "own --state-dir" in second.text() and "Traceback" not in second.text()
    assert first.stop() == 0


def test_signals_hup_usr1_kill_command_and_term(e2e: E2E) -> None:
    e2e.write_rules(UP)
    engine = Engine(e2e, "--log-format", "json")
    try:
        engine.wait_started()
        wait(lambda: engine.health()["ok"])
        engine.process.send_signal(signal.SIGHUP)
        wait(lambda: any(r["data"].get("reason") == "SIGHUP" and r["data"]["ok"] for r in audit(e2e, "reload")))
        engine.process.send_signal(signal.SIGUSR1)
        wait(lambda: engine.health()["kill_switch"]["engaged"])
        assert engine.health()["kill_switch"]["source"] == "signal"
        cleared = subprocess.run([sys.executable, "-m", "rules_engine", "kill", "--clear", "--state-dir",
                                  str(e2e.state_dir)], capture_output=True, text=True, env={
                                      **os.environ, "PYTHONPATH": str(REPO)}, timeout=20)
        assert cleared.returncode == 0, cleared.stderr
        wait(lambda: not engine.health()["kill_switch"]["engaged"])
    finally:
        code = engine.stop(signal.SIGTERM)
    assert code == 0, engine.text()
    lines = [json.loads(line) for line in engine.text().splitlines() if line.startswith("{")]
    assert lines and {"time", "level", "logger", "msg"} <= lines[0].keys()
    assert audit(e2e)[-1]["kind"] == "shutdown"
    assert [r["data"]["engaged"] for r in audit(e2e, "kill_switch")] == [True, False]
    assert verify(e2e.state_dir / "audit.jsonl").ok


def test_a_second_sigterm_while_an_order_is_in_flight_does_not_cut_the_stop_short(e2e: E2E) -> None:
    """SIGTERM lets in-flight actions finish; a second one (an impatient operator) killed the
    process at once (exit 143, no shutdown record, the order left for the next start): the stop
    had put the default handlers back. Now it is told and the stop goes on."""
    e2e.write_rules(UP)
    config = e2e.config_data(mode="live", dead_man_switch={"enabled": False})
    engine = Engine(e2e, "--live", config=config)
    try:
        engine.wait_started()
        wait(lambda: engine.health()["ok"] and engine.health()["feeds"]["spot"]["subscribed"] == 1)
        e2e.sim.faults.delay("AddOrder", 3)
        seen = engine.ticks()
        e2e.sim.set_price("XBTUSD", Decimal("69500"))  # the first tick after a start only arms
        wait(lambda: engine.ticks() > seen)
        e2e.sim.set_price("XBTUSD", Decimal("70100"))
        wait(lambda: engine.health()["actions_in_flight"] > 0)
        engine.process.send_signal(signal.SIGTERM)
        wait(lambda: "SIGTERM received: stopping" in engine.text())
        engine.process.send_signal(signal.SIGTERM)
        wait(lambda: "already stopping" in engine.text())
    finally:
        code = engine.stop()
    assert code == 0, engine.text()
    assert audit(e2e)[-1]["kind"] == "shutdown"
    assert any(r["data"].get("kind") == "place_order" for r in audit(e2e, "response"))  # the order finished


def test_restart_after_kill_9_sends_no_order_twice(e2e: E2E) -> None:
    e2e.write_rules(UP)
    config = e2e.config_data(mode="live", dead_man_switch={"enabled": False})
    mine = lambda: [o for o in e2e.spot_orders() if o.account == e2e.account.api_key]  # noqa: E731
    prices = ["69500", "70100", "68900", "70100", "68900", "70100"]
    for round_ in range(3):
        engine = Engine(e2e, "--live", config=config)
        engine.wait_started()
        wait(lambda: engine.health()["ok"] and engine.health()["feeds"]["spot"]["subscribed"] == 1)
        before = len(mine())
        first, second = prices[round_ * 2: round_ * 2 + 2]
        seen = engine.ticks()
        e2e.sim.set_price("XBTUSD", Decimal(first))  # the first tick after a start only arms
        wait(lambda: engine.ticks() > seen)
        e2e.sim.set_price("XBTUSD", Decimal(second))
        if round_ < 2:
            wait(lambda: len(mine()) > before)
        engine.process.kill()  # SIGKILL, wherever it is
        engine.process.wait(10)
    from rules_engine.state import StateStore, database_path

    def unresolved() -> list:
        """Read-only, so as not to write to the running engine's database."""
        with contextlib.closing(sqlite3.connect(f"file:{database_path(e2e.state_dir)}?mode=ro", uri=True)) as db:
            return db.execute("SELECT cl_ord_id, status FROM decisions WHERE status IN "
                              "('pending', 'sent', 'unknown')").fetchall()

    engine = Engine(e2e, "--live", config=config)
    try:
        engine.wait_started()
        wait(lambda: engine.health()["ok"])
        # A kill between "marked sent" and Kraken's answer, restarted within the order's 15 s
        # deadline, leaves the decision unknown at start: the running engine settles it later.
        wait(lambda: not unresolved(), 30)
    finally:
        assert engine.stop() == 0
    ids = [o.cl_ord_id for o in mine()]
    assert len(ids) == len(set(ids)) and len(ids) >= 2

    with StateStore(database_path(e2e.state_dir)) as store:
        assert store.unresolved_decisions() == []
        decided = {d.cl_ord_id for d in (store.get_decision(i) for i in ids) if d is not None}
    assert decided == set(ids)
    assert verify(e2e.state_dir / "audit.jsonl").ok


@pytest.fixture(autouse=True)
def _no_state_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RULES_ENGINE_STATE_DIR", raising=False)
