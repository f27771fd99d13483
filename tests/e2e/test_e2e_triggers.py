"""Every trigger type end to end in dry-run: price crossings from the simulator's WebSocket
feed (spot and futures), signed signals over HTTP, timers, `for:` holds resolved by the
service's deadline clock; with every audit record chained and carrying its rule file hash."""

from __future__ import annotations

import hashlib
from decimal import Decimal

from e2e_harness import E2E, get, move, post, signed, wait_for


async def test_price_crossing_places_a_paper_order_with_a_full_audit_trail(e2e: E2E) -> None:
    path = e2e.write_rules("""
        - id: btc-up
          triggers: [{type: price, symbol: BTC/USD, crosses_above: 70000}]
          when: "ask - bid < 50"
          actions:
            - {type: check_balance, asset: USD, minimum: "=ask * 0.01"}
            - {type: place_order, pair: XBTUSD, side: buy, ordertype: limit, volume: 0.01, price: "=round(ask, 1)"}
            - {type: log, message: "bought at {price}"}
    """)
    async with e2e.running() as (service, seen, url):
        await move(e2e, service, "XBTUSD", "69500", "69900")
        assert seen.fires() == []
        await move(e2e, service, "XBTUSD", "70100")
        await wait_for(lambda: seen.intents("log"))
        assert [r.detail["fire_seq"] for r in seen.fires("btc-up")] == [1]
        order = seen.intents("place_order")[0]
        assert order.pair == "XBTUSD" and order.price == Decimal("70100.1")
        assert e2e.spot_orders() == []  # dry-run: nothing reaches the exchange
        status, health = await get(url + "/healthz")
        assert status == 200 and health["mode"] == "dry-run" and health["feeds"]["spot"]["connected"]
    kinds = [r["kind"] for r in e2e.audit_records()]
    for kind in ("startup", "trigger", "guard", "decision", "action", "request", "response", "shutdown"):
        assert kind in kinds, kind
    file_hash = hashlib.sha256(path.read_bytes()).hexdigest()
    rule_records = [r for r in e2e.audit_records() if r["rule_id"] == "btc-up"]
    assert rule_records and all(r["rule_hash"] == file_hash for r in rule_records)
    guard = next(r for r in rule_records if r["kind"] == "guard")
    assert guard["data"]["result"] is True and guard["data"]["values"]
    assert e2e.audit_ok()


async def test_futures_crossing_decides_a_futures_order(e2e: E2E) -> None:
    e2e.write_rules("""
        - id: pf-short
          triggers: [{type: price, symbol: PF_XBTUSD, market: futures, crosses_below: 68000}]
          actions:
            - {type: futures_send_order, symbol: PF_XBTUSD, side: sell, order_type: lmt, size: 0.01,
               limit_price: "=round(price, 0)"}
    """)
    async with e2e.running() as (service, seen, url):
        assert set(service.health()["feeds"]) == {"futures"}
        await move(e2e, service, "PF_XBTUSD", "68500", "67900", market="futures")
        await wait_for(lambda: seen.intents("futures_send_order"))
        order = seen.intents("futures_send_order")[0]
        assert order.symbol == "PF_XBTUSD" and order.side == "sell"
    decision = e2e.audit_records("decision")
    assert any(r["data"].get("action") == "would_send" for r in decision)


async def test_signed_signal_fires_matching_rule_only(e2e: E2E) -> None:
    e2e.write_rules("""
        - id: bot-buy
          triggers: [{type: signal, source: mybot, where: "signal.action == 'buy'"}]
          actions: [{type: notify, channel: ops, message: "buy {signal.pair}"}]
        - id: bot-sell
          triggers: [{type: signal, source: mybot, where: "signal.action == 'sell'"}]
          actions: [{type: log, message: "sell"}]
    """)
    async with e2e.running() as (service, seen, url):
        body, headers = signed({"action": "buy", "pair": "XBTUSD", "id": "s-1"})
        status, answer = await post(url + "/signals/mybot", body, headers)
        assert (status, answer) == (202, {"ok": True, "signal_id": "s-1"})
        await wait_for(lambda: seen.intents("notify"))
        await service.settle()
        assert [r.rule_id for r in seen.fires()] == ["bot-buy"]
        assert seen.intents("notify")[0].message == "buy XBTUSD"
    signal = e2e.audit_records("signal")[0]
    assert signal["data"]["signal_id"] == "s-1" and signal["data"]["payload"]["action"] == "buy"


async def test_passphrase_signal_from_tradingview(e2e: E2E) -> None:
    e2e.write_rules("""
        - id: tv
          triggers: [{type: signal, source: tradingview, where: "signal.action == 'buy'"}]
          actions: [{type: log, message: "tv {signal.ticker}"}]
    """)
    async with e2e.running() as (service, seen, url):
        body = b'{"passphrase": "tv-passphrase-123", "id": "tv-1", "ticker": "XBTUSD", "action": "buy"}'
        status, _ = await post(url + "/signals/tradingview", body)
        assert status == 202
        await wait_for(lambda: seen.intents("log"))
    assert "tv-passphrase-123" not in (e2e.state_dir / "audit.jsonl").read_text()


async def test_timer_fires_on_schedule(e2e: E2E) -> None:
    e2e.write_rules("""
        - id: heartbeat
          triggers: [{type: timer, every: 1s}]
          actions:
            - {type: dead_man_switch, timeout: 60s}
            - {type: log, message: "tick at {scheduled_time}"}
    """)
    async with e2e.running() as (service, seen, url):
        await wait_for(lambda: len(seen.intents("log")) >= 2, timeout=4)
        beats = seen.fires("heartbeat")
        assert [b.detail["fire_seq"] for b in beats[:2]] == [1, 2]
        scheduled = [b.detail["context"]["scheduled_time"] for b in beats[:2]]
        assert scheduled[0] == int(scheduled[0]) and scheduled[1] == scheduled[0] + 1
        assert seen.intents("dead_man_switch")[0].timeout == 60


async def test_hold_matures_on_the_service_clock_and_cooldown_blocks_refire(e2e: E2E) -> None:
    e2e.write_rules("""
        - id: eth-hold
          triggers: [{type: price, symbol: ETHUSD, field: bid, crosses_below: 2500}]
          for: 300ms
          cooldown: 1h
          actions: [{type: log, message: "held at {bid}"}]
    """)
    async with e2e.running() as (service, seen, url):
        await move(e2e, service, "ETHUSD", "2550", "2490")
        assert seen.fires() == [] and service.engine.rule_status("eth-hold") == "pending"
        await wait_for(lambda: seen.fires("eth-hold"), timeout=3)  # no tick: the deadline timer's Clock
        await move(e2e, service, "ETHUSD", "2550", "2480")
        await service.settle()
        assert len(seen.fires("eth-hold")) == 1
        assert any(r.kind == "dropped" and r.detail.get("reason") == "cooling down" for r in seen.trace)


async def test_metrics_count_ticks_fires_and_actions(e2e: E2E) -> None:
    e2e.write_rules("""
        - id: up
          triggers: [{type: price, symbol: XBTUSD, crosses_above: 70000}]
          actions: [{type: log, message: "up"}]
    """)
    async with e2e.running() as (service, seen, url):
        await move(e2e, service, "XBTUSD", "69900", "70100")
        await wait_for(lambda: seen.intents("log"))
        status, text = await get(url + "/metrics")
    assert status == 200
    assert 'rules_engine_fires_total{rule="up"} 1.0' in text
    assert 'rules_engine_actions_total{result="ok",type="log"} 1.0' in text
    ticks = next(line for line in text.splitlines() if line.startswith('rules_engine_ticks_total{market="spot"}'))
    assert float(ticks.split()[-1]) >= 2
    assert "rules_engine_decision_latency_seconds_bucket" in text
