"""Dry-run simulates Futures orders on a paper Futures account with the simulator's own
matcher: a limit rests, fills when the price reaches it, and the account survives a restart."""

from __future__ import annotations

from decimal import Decimal

from e2e_harness import E2E, move, wait_for

RULES = """
- id: fut
  cooldown: 1h
  triggers: [{type: price, symbol: XBTUSD, crosses_above: 70000}]
  actions:
    - {type: futures_send_order, symbol: PF_XBTUSD, side: buy, order_type: lmt, size: 0.01, limit_price: 69000}
"""


async def test_a_futures_limit_rests_then_fills_on_the_paper_account(e2e: E2E) -> None:
    e2e.write_rules(RULES)
    wallet = {"paper_wallet": {"balances": {"ZUSD": "1000"}, "futures_balances": {"USD": "5000"}}}
    async with e2e.running(**wallet) as (service, seen, url):
        await move(e2e, service, "XBTUSD", "69500", "70100")
        await wait_for(lambda: seen.intents("futures_send_order"))
        await service.settle()
        intent, report = next((i, r) for i, r in seen.reports if i is not None and i.kind == "futures_send_order")
        assert report.result.ok and report.result.data["status"] == "placed"
        order_id = report.result.data["order_id"]
        assert service.store.get_decision(intent.cli_ord_id).status == "accepted"
        responses = [r for r in e2e.audit_records("response") if r["data"].get("cl_ord_id") == intent.cli_ord_id]
        assert responses[0]["data"]["response"]["sendStatus"]["status"] == "placed"
        assert "simulated" not in responses[0]["data"]["result"]["data"]
        assert e2e.futures_orders() == [], "nothing is sent to the exchange in dry-run"
        await move(e2e, service, "XBTUSD", "68900")
        await wait_for(lambda: service.store.get_decision(intent.cli_ord_id).status == "filled")
    async with e2e.running(**wallet) as (service, seen, url):
        executor = service.executor
        while hasattr(executor, "inner"):
            executor = executor.inner
        account = executor.paper.futures.exchange
        assert [p.size for p in account.positions("paper")] == [Decimal("0.01")]
        assert account.orders[order_id].status == "filled", "the paper Futures account survives a restart"


async def test_without_futures_collateral_the_order_is_refused_as_kraken_would(e2e: E2E) -> None:
    e2e.write_rules(RULES)
    async with e2e.running() as (service, seen, url):
        await move(e2e, service, "XBTUSD", "69500", "70100")
        await wait_for(lambda: seen.intents("futures_send_order"))
        await service.settle()
        _, report = next((i, r) for i, r in seen.reports if i is not None and i.kind == "futures_send_order")
        assert not report.result.ok and report.result.error == "insufficientAvailableFunds"
