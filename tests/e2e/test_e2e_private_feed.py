"""Live mode learns of fills and balance changes from Kraken's private WebSocket v2
(`executions` and `balances`) as they happen, with no REST account read in between."""

from e2e_harness import E2E, move, wait_for


def account_reads(e2e):
    """The account reads (REST Balance and OpenOrders) in the audit log."""
    return sum(1 for r in e2e.audit_records("request") if r["data"]["kind"] == "account")


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
        assert service.health()["private_feed"] == {"connected": True, "connections": 1}
        reads = account_reads(e2e)
        assert reads >= 1  # the start-up read
        await move(e2e, service, "XBTUSD", "69500", "70100")
        await wait_for(lambda: engine_orders(service) and engine_orders(service)[0]["txids"])
        await move(e2e, service, "XBTUSD", "68900")  # the resting buy at 69,000 fills
        await wait_for(lambda: not engine_orders(service))
        await wait_for(lambda: engine_balance(service, "BTC") == "2.01")
        await move(e2e, service, "XBTUSD", "67900")
        await wait_for(lambda: seen.fires("after"))
        assert account_reads(e2e) == reads  # no Balance/OpenOrders read since the feed came up
    assert feed.connections == 1 and not feed.up


async def test_without_the_private_feed_the_rest_reads_still_tell_the_engine(e2e: E2E) -> None:
    """The fallback: no WebSocket token can be had, so the feed never comes up; the periodic
    REST reads (OpenOrders, Balance) still tell the engine of the fill."""
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
    e2e.sim.faults.fail_next("GetWebSocketsToken", count=None)
    async with e2e.running(cli_live=True, mode="live", balance_cache="1s",
                           dead_man_switch={"enabled": False}) as (service, seen, url):
        feed = service.private_feed
        await move(e2e, service, "XBTUSD", "69500", "70100")
        await wait_for(lambda: engine_orders(service) and engine_orders(service)[0]["txids"])
        await move(e2e, service, "XBTUSD", "68900")
        await wait_for(lambda: not engine_orders(service), timeout=10)
        await wait_for(lambda: engine_balance(service, "BTC") == "2.0100000000", timeout=10)
        await move(e2e, service, "XBTUSD", "67900")
        await wait_for(lambda: seen.fires("after"))
        assert feed is not None and not feed.up and feed.connections == 0
        assert service.health()["ok"] and not service.health()["private_feed"]["connected"]
    assert account_reads(e2e) >= 2  # the start-up read and at least one periodic one
    e2e.sim.faults.clear()
