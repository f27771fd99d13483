"""High-availability engines for the cluster tests: `rules-engine run --live` child processes
with `store: {standby: true, exclusive: true, lease_ttl: 2s}` on one key of a throwaway
PostgreSQL, each with its own state dir and runtime dir (as on separate machines), against
the simulator of the test's own process (which a kill of an engine does not touch).

The history checks read the simulator's journal of private calls (`sim.journal`) and the
key's audit chain in PostgreSQL."""

from __future__ import annotations

import itertools
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
from pg_harness import PgServer

from rules_engine.audit import verify
from rules_engine.pgstore import PgStateStore, StoreSettings, export_jsonl

REPO = Path(__file__).resolve().parents[2]
TTL = "2s"
KEY = "main"
RULE = """
- id: up
  triggers: [{type: price, symbol: XBTUSD, crosses_above: 70000}]
  cooldown: 100ms
  actions: [{type: place_order, pair: XBTUSD, side: buy, ordertype: limit, volume: 0.01, price: 60000}]
"""
_numbers = itertools.count(1)


def wait(predicate: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"{what} not met within {timeout} s")


STARTED: list[subprocess.Popen[bytes]] = []


def kill_leftovers() -> None:
    while STARTED:
        process = STARTED.pop()
        if process.poll() is None:
            with_cont = process.pid
            os.kill(with_cont, signal.SIGCONT)
            process.kill()
            process.wait(10)


class HaWorld:
    """One test's key: the simulator (via `e2e`), the PostgreSQL database, the engines' config."""

    def __init__(self, e2e: E2E, server: PgServer, dsn: str, **config: Any) -> None:
        self.e2e = e2e
        self.server = server
        self.dsn = dsn
        self.settings = StoreSettings(dsn, KEY, server.password)
        e2e.write_rules(RULE)
        dead_man = config.pop("dead_man_switch", {"enabled": True, "interval": "5s", "timeout": "60s"})
        self.config = e2e.config_data(mode="live", dead_man_switch=dead_man,
                                      store={"url": dsn, "key": KEY, "standby": True, "exclusive": True,
                                             "lease_ttl": TTL}, **config)
        self.api_key = e2e.account.api_key if e2e.account is not None else ""

    def engine(self, crash_at: str | None = None, env: dict[str, str] | None = None,
               config: dict[str, Any] | None = None) -> HaEngine:
        """An engine; `config` overrides parts of the world's config (mappings merged one level)."""
        merged = dict(self.config)
        for key, value in (config or {}).items():
            merged[key] = {**merged[key], **value} if isinstance(value, dict) and isinstance(merged.get(key), dict) \
                else value
        return HaEngine(self, crash_at, env, merged)

    # ------------------------------------------------------------------ the market

    def price(self, price: str, *engines: HaEngine) -> None:
        seen = [e.ticks() for e in engines]
        self.e2e.sim.set_price("XBTUSD", Decimal(price))
        for engine, before in zip(engines, seen):
            wait(lambda e=engine, b=before: e.ticks() > b, what=f"tick {price} taken")

    def cross(self, leader: HaEngine) -> None:
        """A crossing of 70000 upwards as the leader sees it: one decision, one order."""
        self.price("69900", leader)
        self.e2e.sim.set_price("XBTUSD", Decimal("70100"))

    # ------------------------------------------------------------------ the history

    def journal(self) -> list[Any]:
        return self.e2e.sim.journal.entries(key=self.api_key)

    def decisions(self) -> dict[str, Any]:
        with PgStateStore(self.settings, epoch=None) as store:
            with store._db.reading() as conn:
                rows = conn.execute("SELECT cl_ord_id, decision_id, status, epoch FROM decisions WHERE key_id = %s",
                                    (KEY,)).fetchall()
        return {r[0]: {"decision_id": r[1], "status": r[2], "epoch": r[3]} for r in rows}

    def audit_records(self, kind: str | None = None) -> list[dict[str, Any]]:
        with PgStateStore(self.settings, epoch=None) as store:
            with store._db.reading() as conn:
                rows = conn.execute("SELECT line FROM audit WHERE key_id = %s ORDER BY seq", (KEY,)).fetchall()
        records = [json.loads(r[0]) for r in rows]
        return [r for r in records if kind is None or r["kind"] == kind]

    def audit_verifies(self, tmp: Path) -> bool:
        path = tmp / f"exported-{next(_numbers)}.jsonl"
        export_jsonl(self.settings, path)
        report = verify(path)
        assert report.ok, report.summary()
        return True

    def check_history(self) -> dict[str, int]:
        """The invariants of every trial: at most one accepted AddOrder per client order id
        and per decision, every accepted one decided (committed) first, and every refused
        nonce below the fence of an epoch that started before it (so never a current
        leader's). Returns counts for the report."""
        entries = self.journal()
        decisions = self.decisions()
        accepted = [e for e in entries if e.method == "AddOrder" and e.accepted]
        per_order = Counter(e.cl_ord_id for e in accepted)
        assert all(n == 1 for n in per_order.values()), per_order
        for entry in accepted:
            assert entry.cl_ord_id in decisions, f"an order without a committed decision: {entry}"
        per_decision = Counter(decisions[e.cl_ord_id]["decision_id"] for e in accepted)
        assert all(n == 1 for n in per_decision.values()), per_decision
        fences = [int(r["data"]["fence"]["nonce"]) for r in self.audit_records("epoch_started") if r["data"]["fence"]]
        fence_seqs = {int(e.nonce): e.seq for e in entries if e.method == "CancelAllOrdersAfter" and e.accepted}
        refused = [e for e in entries if e.error and "nonce" in e.error.lower()]
        for entry in refused:
            assert any(fence_seqs.get(f, 10**12) < entry.seq and f > int(entry.nonce) for f in fences), \
                f"a refused nonce not fenced off by a newer epoch (a current leader's?): {entry}"
        return {"accepted_orders": len(accepted), "refused_nonces": len(refused), "decisions": len(decisions)}

    def fence_time(self, nonce: int) -> float | None:
        """When the fence with this nonce was accepted (the simulator's clock)."""
        for entry in self.journal():
            if entry.method == "CancelAllOrdersAfter" and entry.accepted and entry.nonce == str(nonce):
                return float(entry.time)
        return None

    def fence_time_after(self, moment: float) -> float | None:
        """When the first CancelAllOrdersAfter after `moment` was accepted (the simulator's clock)."""
        for entry in self.journal():
            if entry.method == "CancelAllOrdersAfter" and entry.accepted and entry.time >= moment:
                return float(entry.time)
        return None


class HaEngine:
    """One `rules-engine run --live` child on the world's key."""

    def __init__(self, world: HaWorld, crash_at: str | None, env: dict[str, str] | None,
                 config: dict[str, Any]) -> None:
        number = next(_numbers)
        self.world = world
        home = world.e2e.tmp / f"engine-{number}"
        home.mkdir()
        config_path = home / "engine.yaml"
        config_path.write_text(yaml.safe_dump(config))
        self.log = home / "engine.log"
        environ = {**os.environ, **world.e2e.environ, "PYTHONPATH": str(REPO),
                   "RULES_ENGINE_STORE_PASSWORD": world.server.password,
                   "RULES_ENGINE_RUNTIME_DIR": str(home / "run"), **(env or {})}
        environ.pop("RULES_ENGINE_CRASH_AT", None)
        if crash_at:
            environ["RULES_ENGINE_CRASH_AT"] = crash_at
        command = [sys.executable, "-m", "rules_engine", "run", str(world.e2e.rules_dir), "--config",
                   str(config_path), "--state-dir", str(home / "state"), "--port", "0", "--live"]
        with self.log.open("w") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=environ, cwd=home)
        STARTED.append(self.process)
        self.url = ""

    def text(self) -> str:
        return self.log.read_text()

    def _alive(self) -> None:
        if self.process.poll() is not None:
            raise AssertionError(f"engine exited with {self.process.returncode}:\n{self.text()}")

    def standing_by(self) -> HaEngine:
        """Wait until it waits for the key (another engine holds it), its public feed connected,
        or until it took the key (the holder died before this engine, slow to start, looked)."""
        def waiting() -> bool:
            self._alive()
            text = self.text()
            return ("standby for key" in text and 'msg="feed connected"' in text) or "took key" in text
        wait(waiting, 30, "standby waiting")
        return self

    def serves_while_standing_by(self, leader: HaEngine) -> str:
        """While it stands by and `leader` holds the key, its HTTP server answers: /healthz 200,
        /readyz 503 with the problem `standby` naming the leader (host:pid), the status page saying
        so. Returns its URL (the port it keeps once it leads)."""
        def url() -> str | None:
            self._alive()
            found = re.search(r"serving HTTP on (http://127\.0\.0\.1:\d+)", self.text())
            return found.group(1) if found else None
        base = wait(url, 30, "the standby's HTTP server")
        assert requests.get(f"{base}/healthz", timeout=5).json()["ok"] is True

        def named() -> bool:
            answer = requests.get(f"{base}/readyz", timeout=5)
            reason = {p["name"]: p["reason"] for p in answer.json()["problems"]}.get("standby", "")
            return answer.status_code == 503 and f":{leader.process.pid} (epoch" in reason
        wait(named, 10, "/readyz 503 naming the holder")
        page = requests.get(f"{base}/", timeout=5).text
        assert "standing by" in page and f":{leader.process.pid}" in page
        return base

    def leading(self, timeout: float = 30.0) -> HaEngine:
        """Wait until it holds the key, has taken over and its feed is subscribed."""
        def port() -> str | None:
            self._alive()
            found = re.search(r"listening on (http://127\.0\.0\.1:\d+)", self.text())
            return found.group(1) if found else None
        try:
            self.url = wait(port, timeout, "engine leading")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; its log:\n{self.text()[-6000:]}") from None
        wait(lambda: self.health()["feeds"]["spot"]["subscribed"] == 1, what="feed subscribed")
        return self

    def health(self) -> dict[str, Any]:
        return requests.get(f"{self.url}/healthz", timeout=5).json()

    def readyz(self) -> tuple[int, dict[str, Any]]:
        answer = requests.get(f"{self.url}/readyz", timeout=5)
        return answer.status_code, answer.json()

    def ticks(self) -> float:
        text = requests.get(f"{self.url}/metrics", timeout=5).text
        found = re.search(r'^rules_engine_ticks_total\{market="spot"\} (\S+)$', text, re.M)
        return float(found.group(1)) if found else 0.0

    def killed(self, timeout: float = 30.0) -> float:
        """Wait for its crash point's SIGKILL; the time it was seen dead."""
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the crash point was not reached in {timeout} s:\n{self.text()}") from None
        assert code == -signal.SIGKILL, f"expected SIGKILL, got {code}:\n{self.text()}"
        return time.time()

    def stopped_itself(self) -> bool:
        return self.process.poll() is not None

    def stopped_state(self) -> bool:
        """Whether the process is stopped (SIGSTOP): state T in /proc."""
        try:
            return Path(f"/proc/{self.process.pid}/stat").read_text().split(") ")[1].startswith("T")
        except (OSError, IndexError):
            return False

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(30)
