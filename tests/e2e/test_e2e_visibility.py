"""Seeing and trusting the running engine, end to end against the simulator: the decision log
lines, `/readyz` with its reasons (and recovery without a restart), `/api/status` and the
traces, and the metrics that go with them."""

from __future__ import annotations

import io
import json
import logging
import time
from typing import Any

from e2e_harness import ADMIN_TOKEN, E2E, get, move, post, signed, wait_for

from rules_engine.audit import AuditError
from rules_engine.config import parse_config
from rules_engine.service.app import EngineService
from rules_engine.service.logs import setup_logging

FIRE_AND_ORDER = """
    - id: btc-up
      triggers: [{type: price, symbol: XBTUSD, crosses_above: 70000}]
      when: "ask - bid < 50"
      actions:
        - {type: place_order, pair: XBTUSD, side: buy, ordertype: limit, volume: 0.01, price: 60000}
    - id: bot
      triggers: [{type: signal, source: mybot}]
      actions: [{type: log, message: "signal {signal.id}"}]
"""


class Lines:
    """The decision log as the service writes it, in JSON."""

    def __init__(self, fmt: str = "json", level: int = logging.DEBUG) -> None:
        self.stream = io.StringIO()
        self.handler = setup_logging(fmt, level, self.stream)

    def close(self) -> None:
        logging.getLogger().removeHandler(self.handler)
        logging.getLogger().setLevel(logging.WARNING)

    def json(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stream.getvalue().splitlines() if line.startswith("{")]

    def decisions(self) -> list[dict[str, Any]]:
        return [line for line in self.json() if line["logger"] == "rules_engine.decisions"]

    def find(self, msg: str) -> list[dict[str, Any]]:
        return [line for line in self.decisions() if line["msg"] == msg]


async def test_decision_log_has_a_structured_line_for_each_step(e2e: E2E) -> None:
    e2e.write_rules(FIRE_AND_ORDER)
    lines = Lines()
    try:
        async with e2e.running() as (service, seen, url):
            await move(e2e, service, "XBTUSD", "69900", "70100")
            await wait_for(lambda: seen.intents("place_order"))
            await service.settle()
            body, headers = signed({"id": "s-1", "action": "buy"})
            assert (await post(url + "/signals/mybot", body, headers))[0] == 202
            bad_body, bad_headers = signed({"id": "s-2"}, secret="wrong-secret-0123456789")
            assert (await post(url + "/signals/mybot", bad_body, bad_headers))[0] == 401
            status, _ = await post(url + "/kill", b'{"reason": "drill"}', {"Authorization": f"Bearer {ADMIN_TOKEN}"})
            assert status == 200
            await wait_for(lambda: lines.find("kill switch engaged"))
            e2e.write_rules(FIRE_AND_ORDER + "    - id: broken\n      triggers: [{type: nonsense}]\n")
            assert not await service.reload("test")
    finally:
        lines.close()
    trigger = lines.find("trigger fired")[0]
    assert trigger["level"] == "info" and trigger["rule"] == "btc-up"
    assert trigger["value"] == "70100.0" and trigger["level"] == "info" and trigger["field"] == "last"
    guard = lines.find("guard held")[0]
    assert guard["values"] == [{"expression": "ask - bid < 50", "value": True}]
    fired = lines.find("rule fired")[0]
    assert fired["decision_id"] == "btc-up#1" and isinstance(fired["seq"], int)
    intent = lines.find("order intent")[0]
    assert intent["pair"] == "XBTUSD" and intent["side"] == "buy" and intent["level"] == "info"
    sent = [line for line in lines.find("request sent") if line.get("method") == "AddOrder"]
    assert sent and sent[0]["would_send"] is True
    assert lines.find("request settled")
    accepted = lines.find("signal accepted")[0]
    assert accepted["source"] == "mybot" and accepted["signal_id"] == "s-1"
    rejected = lines.find("signal rejected")[0]
    assert rejected["level"] == "warning" and rejected["status"] == 401 and rejected["reason"]
    assert lines.find("kill switch engaged")[0]["level"] == "warning"
    refused = lines.find("reload refused; the previous rules keep running")[0]
    assert refused["level"] == "error" and "rules.yaml:" in refused["errors"][0]
    connected = [line for line in lines.decisions() if line["msg"] == "feed connected"]
    assert connected and connected[0]["market"] == "spot"
    text = "\n".join(json.dumps(line) for line in lines.json())
    assert ADMIN_TOKEN not in text and "wrong-secret" not in text


async def test_text_format_at_the_default_level_writes_fields_as_key_value_pairs(e2e: E2E) -> None:
    e2e.write_rules(FIRE_AND_ORDER)
    lines = Lines("text", logging.INFO)
    try:
        async with e2e.running() as (service, seen, url):
            await move(e2e, service, "XBTUSD", "69900", "70100")
            await wait_for(lambda: seen.intents("place_order"))
    finally:
        lines.close()
    text = lines.stream.getvalue()
    fired = [line for line in text.splitlines() if 'msg="rule fired"' in line]
    assert fired and " level=info " in fired[0] and " rule=btc-up " in fired[0] and " decision_id=btc-up#1" in fired[0]
    assert 'msg="order intent"' in text and 'msg="rule state"' not in text  # debug lines stay out at info


def _service(e2e: E2E, clock: Any = time.time, **config: Any) -> EngineService:
    from e2e_harness import FAST_FEED

    return EngineService(parse_config(e2e.config_data(**config), "<test config>"), [e2e.rules_dir],
                         state_dir=e2e.state_dir, environ=e2e.environ, reload_interval=None,
                         kill_poll_interval=0.05, snapshot_interval=0.1, feed_options=FAST_FEED, drain_timeout=5.0,
                         clock=clock)


async def _ready(url: str) -> tuple[int, dict[str, Any]]:
    return await get(url + "/readyz")


async def test_readyz_not_ready_while_the_audit_log_cannot_be_written_and_ready_again_after(e2e: E2E) -> None:
    e2e.write_rules(FIRE_AND_ORDER)
    async with e2e.running() as (service, seen, url):
        assert await _ready(url) == (200, {"ready": True, "status": "ready", "problems": []})
        assert service.audit is not None
        original, disk_full = service.audit._write_line, [True]

        def write_line(line: bytes) -> None:
            if disk_full[0]:
                raise AuditError("could not write to audit log: No space left on device")
            original(line)

        service.audit._write_line = write_line  # type: ignore[method-assign]
        body, headers = signed({"id": "s-10"})
        await post(url + "/signals/mybot", body, headers)
        status, report = await _ready(url)
        assert status == 503 and report["status"] == "not_ready"
        problem = report["problems"][0]
        assert problem["name"] == "audit_unwritable" and "No space left" in problem["reason"]
        status, health = await get(url + "/healthz")
        assert status == 200 and health["ok"] is True and health["ready"] is False  # alive, not ready
        _, metrics = await get(url + "/metrics")
        assert "rules_engine_ready 0.0" in metrics and "rules_engine_audit_write_failures_total" in metrics
        assert 'rules_engine_readiness_problem{problem="audit_unwritable",severity="not_ready"} 1.0' in metrics
        disk_full[0] = False  # space freed: the next write succeeds and readiness comes back
        body, headers = signed({"id": "s-11"})
        await post(url + "/signals/mybot", body, headers)
        await wait_for(lambda: service.visibility.readyz()["ready"])
        assert (await _ready(url))[0] == 200


async def test_readyz_not_ready_while_the_state_store_cannot_be_written(e2e: E2E) -> None:
    e2e.write_rules(FIRE_AND_ORDER)
    async with e2e.running() as (service, seen, url):
        store = service.store
        assert store is not None
        transaction, broken = store.transaction, [True]

        def failing(**kw: Any) -> Any:
            if broken[0]:
                raise OSError("disk I/O error")
            return transaction(**kw)

        store.transaction = failing  # type: ignore[method-assign]
        await move(e2e, service, "XBTUSD", "69900", "70100")
        await wait_for(lambda: not service.visibility.readyz()["ready"])
        status, report = await _ready(url)
        assert status == 503 and report["problems"][0]["name"] == "state_unwritable"
        assert e2e.spot_orders() == [] and not [r for _, r in seen.reports if r.result.ok and _ is not None
                                                and _.kind == "place_order"]
        broken[0] = False
        await move(e2e, service, "XBTUSD", "69000", "70200")
        await wait_for(lambda: service.visibility.readyz()["ready"])


async def test_readyz_reports_a_silent_feed_and_recovers_when_it_speaks_again(e2e: E2E) -> None:
    e2e.write_rules(FIRE_AND_ORDER)
    offset = [0.0]
    service = _service(e2e, clock=lambda: time.time() + offset[0], health={"feed_max_age": "2s"})
    port = await service.start()
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_for(lambda: service.visibility.readyz()["ready"] and service.health()["feeds"]["spot"]["subscribed"])
        offset[0] = 3.0  # three seconds without a message, as the engine's clock sees it
        status, report = await _ready(url)
        assert status == 503
        stale = next(p for p in report["problems"] if p["name"] == "feed_stale")
        assert "spot feed connected, last message" in stale["reason"] and "max 2 s" in stale["reason"]
        _, metrics = await get(url + "/metrics")
        assert 'rules_engine_feed_stale{market="spot"} 1.0' in metrics
        assert 'rules_engine_feed_tick_age_seconds{market="spot",symbol="XBTUSD"}' in metrics
        await wait_for(lambda: service.visibility.readyz()["ready"], timeout=5)  # the next heartbeat
    finally:
        await service.stop()


async def test_failed_reload_and_rules_in_error_are_degraded_not_unready(e2e: E2E) -> None:
    e2e.write_rules("""
        - id: fragile
          triggers: [{type: price, symbol: XBTUSD, crosses_above: 70000}]
          when: "1 / (price - 70100) > 0"
          actions: [{type: log, message: "never"}]
    """)
    async with e2e.running() as (service, seen, url):
        await move(e2e, service, "XBTUSD", "69900", "70100")
        status, report = await _ready(url)
        assert status == 200 and report["status"] == "degraded"
        assert report["problems"][0]["name"] == "rules_in_error" and "fragile" in report["problems"][0]["reason"]
        _, metrics = await get(url + "/metrics")
        assert 'rules_engine_errors_total{rule="fragile",where="rule"} 1.0' in metrics
        _, doc = await get(url + "/api/status")
        rule = doc["rules"][0]
        assert rule["state"] == "error" and "division" in rule["last_error"]["reason"].lower()
        path = e2e.rules_dir / "rules.yaml"
        good = path.read_text()
        path.write_text(good + "  - id: oops\n    triggers: []\n")
        assert not await service.reload("test")
        report = service.visibility.readyz()
        assert {p["name"] for p in report["problems"]} == {"rules_in_error", "reload_failed"}
        assert report["ready"] is True
        assert service.metrics.last_reload_success._value.get() == 0
        path.write_text(good)
        assert await service.reload("fixed")
        await move(e2e, service, "XBTUSD", "69000", "70200")  # evaluates cleanly now: no longer in error
        assert service.visibility.readyz() == {"ready": True, "status": "ready", "problems": []}
        assert service.metrics.last_reload_success._value.get() == 1


async def test_api_status_and_trace_show_the_fire_with_audit_record_ids(e2e: E2E) -> None:
    e2e.write_rules(FIRE_AND_ORDER)
    async with e2e.running() as (service, seen, url):
        await move(e2e, service, "XBTUSD", "69900", "70100")
        await wait_for(lambda: seen.intents("place_order"))
        await service.settle()
        status, doc = await get(url + "/api/status")
    assert status == 200 and doc["health"] == "ok" and doc["mode"] == "dry-run"
    rules = {r["id"]: r for r in doc["rules"]}
    assert rules["btc-up"]["state"] == "armed" and rules["btc-up"]["last_fire"]["decision_id"] == "btc-up#1"
    assert rules["btc-up"]["last_fire"]["outcome"] == "completed"
    assert rules["btc-up"]["fires"] == {"count": 1, "max": None, "window": None}
    assert doc["feeds"]["spot"]["symbols"]["XBTUSD"]["stale"] is False
    assert doc["kill_switch"]["engaged"] is False
    assert doc["risk"]["orders_last_day"]["value"] == "1"
    recent = rules["btc-up"]["recent"][0]
    assert recent["id"] == "btc-up#1" and recent["fired"] and recent["value"] == "70100.0"
    by_seq = {r["seq"]: r for r in e2e.audit_records()}
    assert by_seq[recent["seqs"][0]]["kind"] == "trigger"
    kinds = [by_seq[s]["kind"] for s in recent["seqs"]]
    for kind in ("trigger", "guard", "decision", "request", "response"):
        assert kind in kinds, kind
    assert all(by_seq[s]["rule_id"] == "btc-up" for s in recent["seqs"])


async def test_a_really_silent_feed_a_reconnect_and_a_timer_beat_in_the_log_and_readyz(e2e: E2E) -> None:
    e2e.write_rules(FIRE_AND_ORDER + """
    - id: beat
      triggers: [{type: timer, every: 1s}]
      actions: [{type: log, message: "beat"}]
    """)
    lines = Lines()
    try:
        async with e2e.running(health={"feed_max_age": "700ms"}) as (service, seen, url):
            await wait_for(lambda: lines.find("timer beat fired"), timeout=4)
            assert (await _ready(url))[0] == 200
            e2e.sim.faults.pause_feeds()  # the connection stays open; nothing arrives
            await wait_for(lambda: (lambda r: not r["ready"] and r["problems"][0]["name"] == "feed_stale")(
                service.visibility.readyz()), timeout=4)
            e2e.sim.faults.resume_feeds()
            await wait_for(lambda: service.visibility.readyz()["ready"], timeout=4)
            e2e.sim.faults.drop_ws_connections()
            await wait_for(lambda: lines.find("feed reconnected"), timeout=5)
    finally:
        lines.close()
    beat = lines.find("timer beat fired")[0]
    assert beat["rule"] == "beat" and "scheduled_time" in beat
    assert lines.find("feed reconnected")[0]["level"] == "warning"
    readiness = [line for line in lines.json() if line["logger"] == "rules_engine.readiness"]
    assert [line["level"] for line in readiness][:2] == ["warning", "info"]
    assert "feed_stale" in readiness[0]["msg"] and "cleared" in readiness[1]["msg"]
