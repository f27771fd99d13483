"""Live mode learns of fills and balance changes from Kraken's private WebSocket v2
(`executions` and `balances`) as they happen, with no REST account read in between."""

from e2e_harness import E2E, move, wait_for


def engine_orders(service):
    return service.engine.snapshot()["orders"]


def engine_balance(service, asset):
    found = service.engine.snapshot()["balances"]["values"].get(asset)
    return None if found is None else found[0]


async def test_fills_and_balances_arrive_over_the_private_feed(e2e: E2E) -> None:
    e2e.write_rules("""
        - id: rest
          triggers: [{type: price, symbol: XBTUSD, crosses_above: 70000}]
          cooldown: 1h
          actions: [{type: place_order, pair: XBTUSD, side: buy, ordertype: limit, volume: 0.01, price: 69000}]
        - id: after
          triggers: [{type: price, symbol: XBTUSD, crosses_below: 68000}]
          when: "open_orders() == 0 and balance('XBT') > 2"
          actions: [{type: log, message: "bought"}]
    """)
    # balance_cache 10m: the account is read over REST at start and then not for ten minutes
    async with e2e.running(cli_live=True, mode="live", balance_cache="10m",
                           dead_man_switch={"enabled": False}) as (service, seen, url):
        feed = service.private_feed
        assert feed is not None
        await wait_for(lambda: feed.up)
        reads = len(e2e.audit_records("request"))
        await move(e2e, service, "XBTUSD", "69500", "70100")
        await wait_for(lambda: engine_orders(service) and engine_orders(service)[0]["txids"])
        await move(e2e, service, "XBTUSD", "68900")  # the resting buy at 69,000 fills
        await wait_for(lambda: not engine_orders(service))
        await wait_for(lambda: engine_balance(service, "BTC") == "2.01")
        await move(e2e, service, "XBTUSD", "67900")
        await wait_for(lambda: seen.fires("after"))
        methods = [r["data"].get("method") for r in e2e.audit_records("request")[reads:]]
        assert "OpenOrders" not in methods and "Balance" not in methods and "QueryOrders" not in methods
    assert feed.connections == 1 and not feed.up
