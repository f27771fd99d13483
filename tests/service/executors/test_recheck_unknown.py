"""A decision left `unknown` (its lookup came before the order's deadline) is looked up again
while the engine runs, and settled once the deadline proves the answer."""

from __future__ import annotations

from decimal import Decimal

from rules_engine.audit import AuditLog
from rules_engine.execution.dispatcher import Dispatcher
from rules_engine.execution.live import LiveExecutor
from rules_engine.kraken.credentials import Credentials
from rules_engine.kraken.nonce import NonceSource
from rules_engine.kraken.spot_rest import SpotClient
from rules_engine.sim.config import Account, SimConfig
from rules_engine.sim.server import Simulator
from rules_engine.state import StateStore

KEY, SECRET = "recheck-key", "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg=="
INTENT = {"intent_id": "r#1/0", "kind": "place_order", "pair": "XBTUSD", "side": "buy", "ordertype": "limit",
          "volume": Decimal("0.01"), "price": Decimal("50000")}


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def test_an_unknown_decision_is_settled_after_its_deadline_without_a_restart(tmp_path) -> None:
    clock = Clock()
    sim = Simulator(SimConfig(accounts=[Account(KEY, SECRET, {"ZUSD": "10000"})], prices={"XBTUSD": "60000"},
                              tick_interval=0), clock=clock)
    with sim.running() as endpoints, StateStore(tmp_path / "engine.sqlite", clock=clock) as store:
        audit = AuditLog(tmp_path / "audit.jsonl", mode="live", clock=clock)
        spot = SpotClient(Credentials(KEY, SECRET), endpoints, nonce_source=NonceSource(), clock=clock)
        dispatcher = Dispatcher(LiveExecutor(spot, order_deadline=15, clock=clock), store, audit, mode="live",
                                clock=clock)
        store.record_decision("gone-1", "r", "r#1", INTENT)
        store.mark_sent("gone-1")
        store.record_outcome("gone-1", "unknown", {})
        dispatcher.recheck_unknown()
        assert store.get_decision("gone-1").status == "unknown"  # not found, but it might still arrive
        assert "recovered" not in (tmp_path / "audit.jsonl").read_text()  # nothing settled: nothing audited
        clock.now += 20  # its deadline has passed: absence is proof
        dispatcher.recheck_unknown()
        assert store.get_decision("gone-1").status == "rejected"
        assert (tmp_path / "audit.jsonl").read_text().count('"recovered"') == 1
        assert dispatcher.recheck_unknown() == []
        spot.close()
        audit.close()
