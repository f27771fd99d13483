"""A worker's delivery hub leaves a cell that is claiming alone at its backstop query: waking
it would only make it claim again and find nothing (a transaction per key for nothing in a
large fan-out, where most keys are still waiting for their claim at the first backstop)."""

from __future__ import annotations

from rules_engine.pgstore import StoreSettings
from rules_engine.service.delivery_hub import DeliveryHub


def test_the_backstop_wakes_only_cells_that_are_not_claiming() -> None:
    hub = DeliveryHub(StoreSettings("postgresql://engine@127.0.0.1:1/none"))
    wakes = {key: hub.register(key) for key in ("a", "b", "c")}
    for event in wakes.values():
        event.clear()
    with hub.claiming("a"):
        hub.wake_pending(["a", "b"])  # both have pending deliveries: a's own claim is taking them
        assert not wakes["a"].is_set() and wakes["b"].is_set() and not wakes["c"].is_set()
        assert hub.backstop_wakes == 1
    hub.wake_pending(["a"])  # a delivery still pending after its claim (a lost notification): woken
    assert wakes["a"].is_set() and hub.backstop_wakes == 2
