"""A Futures order that was filled or cancelled while the engine was down (its answer never
recorded) is settled at the restart through `orders/status`, not left `unknown`."""

from __future__ import annotations

import sqlite3
from decimal import Decimal

import pytest

from e2e_harness import E2E, move, wait_for

RULES = """
- id: fut
  cooldown: 1h
  triggers: [{type: price, symbol: XBTUSD, crosses_above: 70000}]
  actions:
    - {type: futures_send_order, symbol: PF_XBTUSD, side: buy, order_type: lmt, size: 0.01, limit_price: 60000}
"""
LIVE = {"cli_live": True, "mode": "live", "dead_man_switch": {"enabled": False}}


def _forget_the_answer(e2e: E2E, cl_ord_id: str) -> None:
    """As if the engine died after sending, before it recorded Kraken's answer."""
    with sqlite3.connect(e2e.state_dir / "engine.sqlite") as db:
        db.execute("UPDATE decisions SET status = 'sent', outcome = NULL WHERE cl_ord_id = ?", (cl_ord_id,))


@pytest.mark.parametrize("while_down", ["filled", "cancelled"])
async def test_a_futures_order_finished_during_a_crash_is_settled(e2e: E2E, while_down: str) -> None:
    e2e.write_rules(RULES)
    async with e2e.running(**LIVE) as (service, seen, url):
        await move(e2e, service, "XBTUSD", "69500", "70100")
        await wait_for(lambda: e2e.futures_orders())
        await service.settle()
    order = e2e.futures_orders()[0]
    assert order.is_open
    _forget_the_answer(e2e, order.cli_ord_id)
    if while_down == "filled":
        e2e.sim.set_price("XBTUSD", Decimal("59000"))
    else:
        with e2e.sim.lock:
            e2e.sim.futures.cancel(order.account, e2e.sim.clock(), order_id=order.order_id)
    assert order.status == while_down
    async with e2e.running(**LIVE, wait_feeds=False) as (service, seen, url):
        decision = service.store.get_decision(order.cli_ord_id)
        assert decision is not None and decision.status == while_down, decision
    recovered = [r for r in e2e.audit_records("recovered") if r["data"].get("cl_ord_id") == order.cli_ord_id]
    assert recovered and recovered[0]["data"]["status"] == while_down
    assert recovered[0]["data"]["request"]["params"] == {"cliOrdId": order.cli_ord_id}
    assert len(e2e.futures_orders()) == 1, "never sent again"


async def test_a_futures_order_filled_long_before_the_restart_is_found_in_the_fills(e2e: E2E) -> None:
    """`orders/status` forgets a finished order after 5 seconds; the answer audited before the
    crash gives its order id, and the fills name it."""
    e2e.write_rules(RULES)
    async with e2e.running(**LIVE) as (service, seen, url):
        await move(e2e, service, "XBTUSD", "69500", "70100")
        await wait_for(lambda: e2e.futures_orders())
        await service.settle()
    order = e2e.futures_orders()[0]
    _forget_the_answer(e2e, order.cli_ord_id)
    e2e.sim.set_price("XBTUSD", Decimal("59000"))
    with e2e.sim.lock:
        order.updated -= 60  # filled a minute ago, as far as orders/status is concerned
    async with e2e.running(**LIVE, wait_feeds=False) as (service, seen, url):
        decision = service.store.get_decision(order.cli_ord_id)
        assert decision is not None and decision.status == "filled", decision
    recovered = [r for r in e2e.audit_records("recovered") if r["data"].get("cl_ord_id") == order.cli_ord_id]
    assert recovered[0]["data"]["response"]["fills"][0]["order_id"] == order.order_id
