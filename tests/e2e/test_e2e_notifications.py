"""Notifications that arrive: `notify` actions and engine events delivered through Apprise to a
real HTTP receiver on 127.0.0.1 (Apprise's `json://`), retried, audited, redacted."""

from __future__ import annotations

import io
import logging
from typing import Any

from aiohttp import web
from e2e_harness import ADMIN_TOKEN, E2E, post, signed, wait_for

from rules_engine.service.logs import setup_logging
from rules_engine.service.startup import StartupError

RULES = """
    - id: bot
      triggers: [{type: signal, source: mybot}]
      actions: [{type: notify, channel: ops, message: "signal {signal.id} says {signal.action}"}]
"""
TOKEN_PATH = "hooks/secret-hook-token-4242"


class Receiver:
    """An HTTP endpoint that records what it is sent; it can fail the first `fail` requests."""

    def __init__(self, fail: int = 0) -> None:
        self.fail = fail
        self.received: list[dict[str, Any]] = []
        self.attempts = 0
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.attempts += 1
        if self.attempts <= self.fail:
            return web.Response(status=503, text="busy")
        self.received.append({"path": request.path, **await request.json()})
        return web.json_response({"ok": True})

    async def __aenter__(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.port}/{TOKEN_PATH}"


def _config(**extra: Any) -> dict[str, Any]:
    return {"channels": {"ops": {"url_env": "OPS_URL"}}, "backoff": "10ms", "timeout": "5s", **extra}


async def test_notify_is_delivered_retried_and_audited_without_its_url(e2e: E2E) -> None:
    e2e.write_rules(RULES)
    stream = io.StringIO()
    handler = setup_logging("json", logging.DEBUG, stream)
    for noisy in ("apprise", "urllib3", "aiohttp.access"):  # show the URL if they can: it must still be masked
        logging.getLogger(noisy).setLevel(logging.DEBUG)
    try:
        await _deliver_with_retries(e2e)
    finally:
        logging.getLogger().removeHandler(handler)
        logging.getLogger().setLevel(logging.WARNING)
    assert "notification delivered" in stream.getvalue()
    assert "secret-hook-token-4242" not in stream.getvalue()


async def _deliver_with_retries(e2e: E2E) -> None:
    async with Receiver(fail=2) as receiver:
        e2e.environ["OPS_URL"] = receiver.url
        async with e2e.running(notifications=_config(retries=3)) as (service, seen, url):
            body, headers = signed({"id": "s-1", "action": "buy"})
            assert (await post(url + "/signals/mybot", body, headers))[0] == 202
            await wait_for(lambda: receiver.received)
            await wait_for(lambda: e2e.audit_records("notification"))
        assert receiver.attempts == 3
        message = receiver.received[0]
        assert message["message"] == "signal s-1 says buy" and message["title"] == "rules-engine: bot"
        assert message["path"] == f"/{TOKEN_PATH}"
    record = e2e.audit_records("notification")[0]
    assert record["rule_id"] == "bot" and record["data"]["ok"] is True and record["data"]["attempts"] == 3
    assert record["data"]["channel"] == "ops" and record["data"]["intent_id"].startswith("bot#1/")
    assert service.metrics.notifications.labels("ops", "delivered")._value.get() == 1
    assert "secret-hook-token-4242" not in (e2e.state_dir / "audit.jsonl").read_text()


async def test_a_delivery_that_keeps_failing_is_audited_as_failed(e2e: E2E) -> None:
    e2e.write_rules(RULES)
    async with Receiver(fail=100) as receiver:
        e2e.environ["OPS_URL"] = receiver.url
        async with e2e.running(notifications=_config(retries=1)) as (service, seen, url):
            body, headers = signed({"id": "s-2", "action": "sell"})
            await post(url + "/signals/mybot", body, headers)
            await wait_for(lambda: e2e.audit_records("notification"))
    record = e2e.audit_records("notification")[0]["data"]
    assert record["ok"] is False and record["result"] == "failed" and record["attempts"] == 2
    assert receiver.attempts == 2 and receiver.received == []


async def test_engine_events_are_routed_to_a_channel(e2e: E2E) -> None:
    e2e.write_rules(RULES)
    async with Receiver() as receiver:
        e2e.environ["OPS_URL"] = receiver.url
        config = _config(events={"kill_switch": "ops", "reload_refused": "ops"})
        async with e2e.running(notifications=config) as (service, seen, url):
            status, _ = await post(url + "/kill", b'{"reason": "drill"}', {"Authorization": f"Bearer {ADMIN_TOKEN}"})
            assert status == 200
            await wait_for(lambda: receiver.received)
            e2e.write_rules(RULES + "    - id: bad\n      triggers: [{type: nonsense}]\n")
            assert not await service.reload("test")
            await wait_for(lambda: len(receiver.received) == 2)
    kill, reload = receiver.received
    assert kill["title"] == "rules-engine: kill switch engaged" and "drill" in kill["message"]
    assert reload["title"] == "rules-engine: reload refused" and "rules.yaml:" in reload["message"]
    events = [r["data"]["event"] for r in e2e.audit_records("notification")]
    assert events == ["kill_switch", "reload_refused"]


async def test_dry_run_delivery_can_be_turned_off_and_unknown_channels_are_reported(e2e: E2E, caplog: Any) -> None:
    caplog.set_level(logging.WARNING, "rules_engine.service")
    e2e.write_rules(RULES + """
    - id: elsewhere
      triggers: [{type: signal, source: mybot}]
      actions: [{type: notify, channel: nowhere, message: "x"}]
    """)
    async with Receiver() as receiver:
        e2e.environ["OPS_URL"] = receiver.url
        async with e2e.running(notifications=_config(dry_run=False)) as (service, seen, url):
            body, headers = signed({"id": "s-3", "action": "buy"})
            await post(url + "/signals/mybot", body, headers)
            await wait_for(lambda: len(e2e.audit_records("notification")) == 2)
    assert receiver.received == []
    results = {r["rule_id"]: r["data"]["result"] for r in e2e.audit_records("notification")}
    assert results == {"bot": "skipped", "elsewhere": "not_configured"}
    assert "rule elsewhere notifies channel 'nowhere', which is not configured" in caplog.text
    assert "rule bot notifies" not in caplog.text


async def test_a_channel_without_its_url_refuses_to_start(e2e: E2E) -> None:
    e2e.write_rules(RULES)
    service = e2e.service(notifications=_config())
    try:
        await service.start()
    except StartupError as exc:
        assert "ops" in str(exc) and "OPS_URL" in str(exc)
    else:
        await service.stop()
        raise AssertionError("started without the channel's URL")


async def test_readiness_lost_and_restored_are_notified(e2e: E2E) -> None:
    e2e.write_rules("""
        - id: watch
          triggers: [{type: price, symbol: XBTUSD, crosses_above: 80000}]
          actions: [{type: log, message: "x"}]
    """)
    async with Receiver() as receiver:
        e2e.environ["OPS_URL"] = receiver.url
        config = _config(events={"readiness_lost": "ops", "readiness_restored": "ops"})
        async with e2e.running(notifications=config, health={"feed_max_age": "600ms"}) as (service, seen, url):
            await wait_for(lambda: service.visibility.readyz()["ready"])
            e2e.sim.faults.pause_feeds()
            await wait_for(lambda: receiver.received, timeout=5)
            e2e.sim.faults.resume_feeds()
            await wait_for(lambda: len(receiver.received) == 2, timeout=5)
    lost, restored = receiver.received
    assert lost["title"] == "rules-engine: not ready to trade" and lost["message"].startswith("feed_stale: spot feed")
    assert restored["title"] == "rules-engine: problem cleared" and restored["message"] == "feed_stale"


async def test_an_order_whose_state_is_unknown_is_notified_and_logged_as_an_error(e2e: E2E) -> None:
    e2e.write_rules("""
        - id: buyer
          triggers: [{type: price, symbol: XBTUSD, crosses_above: 70000}]
          actions: [{type: place_order, pair: XBTUSD, side: buy, ordertype: limit, volume: 0.01, price: 60000}]
    """)
    from e2e_harness import FAST_FEED, move

    from rules_engine.config import parse_config
    from rules_engine.service.app import EngineService

    stream = io.StringIO()
    handler = setup_logging("json", logging.INFO, stream)
    try:
        async with Receiver() as receiver:
            e2e.environ["OPS_URL"] = receiver.url
            config = e2e.config_data(mode="live", dead_man_switch={"enabled": False},
                                     notifications=_config(events={"order_ambiguous": "ops"}))
            service = EngineService(parse_config(config), [e2e.rules_dir], cli_live=True, state_dir=e2e.state_dir,
                                    environ=e2e.environ, reload_interval=None, feed_options=FAST_FEED,
                                    executor_options={"client_options": {"sleep": lambda seconds: None}})
            await service.start()
            try:
                await wait_for(lambda: service.health()["feeds"].get("spot", {}).get("subscribed"))
                e2e.sim.faults.timeout_after_accept("AddOrder", delay=0)  # placed, then the connection drops
                e2e.sim.faults.http_status("OpenOrders", 503, count=None)  # and the lookup cannot settle it
                await move(e2e, service, "XBTUSD", "69900", "70100")
                await wait_for(lambda: receiver.received, timeout=10)
                e2e.sim.faults.clear()
            finally:
                await service.stop()
    finally:
        logging.getLogger().removeHandler(handler)
        logging.getLogger().setLevel(logging.WARNING)
    (message,) = receiver.received
    assert message["title"] == "rules-engine: order state unknown" and "rule buyer" in message["message"]
    assert '"msg": "request ambiguous: order state unknown"' in stream.getvalue()
