"""Modes (dry-run, validate, live and the live gate), every action type against the
simulator's exchange, risk limits and the kill switch end to end."""

from __future__ import annotations

import asyncio
import base64
import errno
import json
import os
from decimal import Decimal
from pathlib import Path

import pytest

from e2e_harness import ADMIN_TOKEN, E2E, get, move, post, wait_for
from rules_engine.service.startup import StartupError

ORDERS = """
- id: btc
  triggers:
    - {type: price, symbol: XBTUSD, crosses_above: 70000}
    - {type: price, symbol: XBTUSD, crosses_below: 69000}
  actions:
    - {type: place_order, if: "level == 70000", pair: XBTUSD, side: buy, ordertype: limit, volume: 0.01,
       price: 65000}
    - {type: futures_send_order, if: "level == 70000", symbol: PF_XBTUSD, side: sell, order_type: lmt,
       size: 0.01, limit_price: 90000}
    - {type: cancel_order, if: "level == 69000", own: true}
    - {type: futures_cancel_order, if: "level == 69000", own: true}
- id: eth-down
  triggers: [{type: price, symbol: ETHUSD, crosses_below: 2500}]
  actions:
    - {type: place_order, pair: ETHUSD, side: buy, ordertype: limit, volume: 1, price: 2000}
    - {type: cancel_order, cl_ord_id: "=rule_id"}
    - {type: cancel_all}
"""


async def test_live_mode_sends_every_order_type_to_the_exchange(e2e: E2E) -> None:
    e2e.write_rules(ORDERS)
    async with e2e.running(cli_live=True, mode="live", dead_man_switch={"interval": "1s", "timeout": "5s"}) as (
            service, seen, url):
        await move(e2e, service, "XBTUSD", "69500", "70100")
        await wait_for(lambda: len(seen.intents()) >= 2)
        await service.settle()
        spot = [o for o in e2e.spot_orders() if o.account == e2e.account.api_key]
        futures = e2e.futures_orders()
        place, send = seen.intents("place_order")[0], seen.intents("futures_send_order")[0]
        assert [o.cl_ord_id for o in spot] == [place.cl_ord_id] and spot[0].is_open
        assert [o.cli_ord_id for o in futures] == [send.cli_ord_id] and futures[0].is_open
        await move(e2e, service, "XBTUSD", "68900")
        await wait_for(lambda: len(seen.intents("futures_cancel_order")) == 1)
        await service.settle()
        assert not spot[0].is_open and not futures[0].is_open
        await move(e2e, service, "ETHUSD", "2550", "2450")
        await wait_for(lambda: seen.intents("cancel_all"))
        await service.settle()
        eth = [o for o in e2e.spot_orders() if o.pair == "ETHUSD"]
        assert len(eth) == 1 and not eth[0].is_open
        with e2e.sim.lock:  # the dead man's switch keeper armed CancelAllOrdersAfter on the account
            armed = e2e.sim.exchange.cancel_all_after(e2e.account.api_key, 5, e2e.sim.clock())
        assert armed is not None
    assert all(r["mode"] == "live" for r in e2e.audit_records())
    responses = [r for r in e2e.audit_records("response") if r["data"]["kind"] == "place_order"]
    assert responses and responses[0]["data"]["result"]["ok"] is True


async def test_validate_mode_checks_orders_without_placing_them(e2e: E2E) -> None:
    e2e.write_rules(ORDERS.split("- id: eth-down")[0])
    async with e2e.running(mode="validate") as (service, seen, url):
        await move(e2e, service, "XBTUSD", "69500", "70100")
        await wait_for(lambda: seen.intents("place_order"))
        await service.settle()
        assert e2e.spot_orders() == []
    request = next(r for r in e2e.audit_records("request") if r["data"]["kind"] == "place_order")
    assert request["data"]["request"]["params"]["validate"] is True


@pytest.mark.parametrize(("mode", "cli_live", "needle"), [
    ("live", False, "--live was not given"),
    ("dry-run", True, "--live was given but the engine config says mode: dry-run"),
])
async def test_live_gate_refuses_to_start(e2e: E2E, mode: str, cli_live: bool, needle: str) -> None:
    e2e.write_rules(ORDERS)
    service = e2e.service(cli_live, mode=mode)
    with pytest.raises(StartupError, match=needle):
        await service.start()
    assert not (e2e.state_dir / "audit.jsonl").exists()


async def test_live_without_credentials_refuses(e2e: E2E) -> None:
    e2e.write_rules(ORDERS)
    for name in ("KRAKEN_API_KEY", "KRAKEN_API_SECRET"):
        e2e.environ.pop(name)
    with pytest.raises(StartupError, match="no API credentials"):
        await e2e.service(True, mode="live").start()


@pytest.mark.parametrize("risk", [
    {"max_order_notional": {"default": 1000}, "allowed_pairs": ["XBTUSD"]},
    # any name Kraken gives the pair, as in the rules (walked: BTC/USD here blocked every order,
    # and a limit under XBT/USD limited nothing)
    {"max_order_notional": {"XBT/USD": 1000}, "allowed_pairs": ["BTC/USD"]},
])
async def test_risk_limits_block_orders_over_the_limit(e2e: E2E, risk: dict) -> None:
    e2e.write_rules("""
        - id: big
          triggers: [{type: price, symbol: XBTUSD, crosses_above: 70000}]
          actions: [{type: place_order, pair: XBTUSD, side: buy, ordertype: limit, volume: 1, price: 70000}]
        - id: small
          triggers: [{type: price, symbol: XBTUSD, crosses_above: 70000}]
          actions: [{type: place_order, pair: XBTUSD, side: buy, ordertype: limit, volume: 0.01, price: 70000}]
        - id: other-pair
          triggers: [{type: price, symbol: XBTUSD, crosses_above: 70000}]
          actions: [{type: place_order, pair: ETHUSD, side: buy, ordertype: limit, volume: 0.1, price: 2000}]
    """)
    async with e2e.running(risk=risk) as (service, seen, url):
        await move(e2e, service, "XBTUSD", "69900", "70100")
        await service.settle()
        assert [i.rule_id for i in seen.intents("place_order")] == ["small"]
    risk_records = e2e.audit_records("risk")
    assert {(r["rule_id"], r["data"]["limit"]) for r in risk_records} == {
        ("big", "max_order_notional"), ("other-pair", "allowed_pairs")}


async def test_a_risk_limit_on_a_pair_kraken_does_not_list_refuses_to_start(e2e: E2E) -> None:
    """A typo in a pair name would make its limit apply to nothing: refused, with the nearest name."""
    e2e.write_rules(ORDERS)
    risk = {"allowed_pairs": ["XBTUSD", "ETHUSDD"], "max_order_notional": {"XBTUSDT": 1000, "PF_XBTUSD": 500}}
    with pytest.raises(StartupError) as refused:
        await e2e.service(risk=risk).start()
    assert str(refused.value) == (
        "invalid engine config:\n"
        "  <test config>: risk/allowed_pairs: unknown Kraken pair 'ETHUSDD' (did you mean 'ETHUSD'?)")


async def test_kill_switch_over_http_blocks_fires_and_cancels_open_orders(e2e: E2E) -> None:
    e2e.write_rules("""
        - id: rest
          triggers: [{type: price, symbol: XBTUSD, crosses_above: 70000}]
          actions: [{type: place_order, pair: XBTUSD, side: buy, ordertype: limit, volume: 0.01, price: 60000}]
        - id: dip
          triggers: [{type: price, symbol: XBTUSD, crosses_below: 69000}]
          actions: [{type: log, message: "dip"}]
    """)
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with e2e.running(cli_live=True, mode="live", dead_man_switch={"enabled": False}) as (service, seen, url):
        await move(e2e, service, "XBTUSD", "69500", "70100")
        await wait_for(lambda: any(o.is_open for o in e2e.spot_orders()))
        status, _ = await post(url + "/kill", b'{"reason": "test"}', {"Content-Type": "application/json"})
        assert status == 401
        status, answer = await post(url + "/kill", json.dumps({"reason": "runaway", "cancel_all": True}).encode(),
                                    {**auth, "Content-Type": "application/json"})
        assert status == 200 and answer["kill_switch"]["engaged"] is True
        await wait_for(lambda: seen.intents("cancel_all"))
        await service.settle()
        assert not any(o.is_open for o in e2e.spot_orders())
        await move(e2e, service, "XBTUSD", "68900")
        assert seen.fires("dip") == []
        assert any(r.kind == "blocked" and r.rule_id == "dip" for r in seen.trace)
        status, health = await get(url + "/healthz")
        assert health["kill_switch"]["engaged"] is True and health["kill_switch"]["reason"] == "runaway"
        status, _ = await post(url + "/kill/clear", b"", auth)
        assert status == 200
        await wait_for(lambda: not service.engine.snapshot()["kill_switch"]["engaged"])
        await move(e2e, service, "XBTUSD", "69500", "68900")
        await wait_for(lambda: seen.fires("dip"))
    kinds = [r["data"]["engaged"] for r in e2e.audit_records("kill_switch")]
    assert kinds == [True, False]


async def test_kill_file_engages_at_start_and_while_running(e2e: E2E) -> None:
    e2e.write_rules("""
        - id: up
          triggers: [{type: price, symbol: XBTUSD, crosses_above: 70000}]
          actions: [{type: log, message: "up"}]
    """)
    e2e.state_dir.mkdir()
    (e2e.state_dir / "KILL").write_text("maintenance")
    async with e2e.running() as (service, seen, url):
        await move(e2e, service, "XBTUSD", "69900", "70100")
        assert seen.fires() == []
        (e2e.state_dir / "KILL").unlink()
        await wait_for(lambda: not service.kill_switch.engaged)
        await move(e2e, service, "XBTUSD", "69900", "70100")
        await wait_for(lambda: seen.fires("up"))
        (e2e.state_dir / "KILL").write_text("again")
        await wait_for(lambda: service.kill_switch.engaged)
        await wait_for(lambda: service.engine.snapshot()["kill_switch"]["engaged"])
        assert service.metrics.kill_switch._value.get() == 1


async def test_paper_fill_from_the_feed_reaches_the_core(e2e: E2E) -> None:
    e2e.write_rules("""
        - id: resting
          triggers: [{type: price, symbol: XBTUSD, crosses_above: 70000}]
          actions: [{type: place_order, pair: XBTUSD, side: sell, ordertype: limit, volume: 0.5, price: 71000}]
    """)
    async with e2e.running() as (service, seen, url):
        await move(e2e, service, "XBTUSD", "69900", "70100")
        await wait_for(lambda: seen.intents("place_order"))
        await service.settle()
        assert service.engine.snapshot()["orders"]
        await move(e2e, service, "XBTUSD", "71100")
        await wait_for(lambda: not service.engine.snapshot()["orders"])
        cl_ord_id = seen.intents("place_order")[0].cl_ord_id
        assert service.store.get_decision(cl_ord_id).status == "filled"
        assert Decimal(service.executor.paper.balances()["XXBT"]) == Decimal("1.5")


async def test_config_cancel_open_orders_applies_to_a_kill_file_without_cancel_all(e2e: E2E) -> None:
    e2e.write_rules("""
        - id: rest
          triggers: [{type: price, symbol: XBTUSD, crosses_above: 70000}]
          actions: [{type: place_order, pair: XBTUSD, side: buy, ordertype: limit, volume: 0.01, price: 60000}]
    """)
    async with e2e.running(cli_live=True, mode="live", dead_man_switch={"enabled": False}) as (service, seen, url):
        await move(e2e, service, "XBTUSD", "69500", "70100")
        await wait_for(lambda: any(o.is_open for o in e2e.spot_orders()))
        (e2e.state_dir / "KILL").write_text("plain kill file, no cancel_all")
        await wait_for(lambda: seen.intents("cancel_all"))
        await service.settle()
        assert not any(o.is_open for o in e2e.spot_orders())


async def test_a_state_dir_that_cannot_be_made_refuses_to_start_with_its_reason(e2e: E2E) -> None:
    """An unwritable state dir (systemd's ProtectSystem=strict outside the unit's StateDirectory,
    a file in its place) is a refusal naming the folder, not a traceback (and a worker cell that
    cannot start is `failed`, not `starting` for ever: tests/cluster/test_worker_cells.py)."""
    e2e.write_rules(ORDERS)
    blocker = e2e.state_dir.parent / "not-a-folder"
    blocker.write_text("")
    e2e.state_dir = blocker / "state"
    with pytest.raises(StartupError, match=r"cannot create the state dir .*not-a-folder/state"):
        await e2e.service().start()


@pytest.mark.parametrize("blocked", ["read-only", "folder"])
async def test_an_audit_log_that_cannot_be_opened_refuses_to_start_with_its_reason(
        e2e: E2E, blocked: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A state dir on a read-only mount (walked: a traceback, OSError from os.open), or a folder
    where audit.jsonl belongs (IsADirectoryError from the verify), is a refusal naming the log."""
    e2e.write_rules(ORDERS)
    log = e2e.state_dir / "audit.jsonl"
    if blocked == "folder":
        log.mkdir(parents=True)
    else:
        real_open = os.open

        def read_only(path, flags, *args):
            if str(path) == str(log) and flags & os.O_RDWR:
                raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
            return real_open(path, flags, *args)

        monkeypatch.setattr(os, "open", read_only)
    reason = "Read-only file system" if blocked == "read-only" else "Is a directory"
    with pytest.raises(StartupError, match=rf"cannot (open|read) audit log .*audit.jsonl.*{reason}"):
        await e2e.service().start()


async def test_readyz_says_why_the_balances_could_not_be_read(e2e: E2E) -> None:
    """A wrong API secret: /readyz said only 'the account's balances have not been read yet',
    the error (EAPI:Invalid signature) was in the log alone. Now it is the reason."""
    e2e.write_rules(ORDERS)
    e2e.environ["KRAKEN_API_SECRET"] = base64.b64encode(b"not the secret of this key" * 3).decode()
    async with e2e.running(mode="validate") as (service, seen, url):
        await wait_for(lambda: any(p["name"] == "balances_unknown" and "could not be read" in p["reason"]
                                   for p in service.visibility.readyz()["problems"]))
        status, ready = await get(url + "/readyz")
        assert status == 503
        [problem] = [p for p in ready["problems"] if p["name"] == "balances_unknown"]
        assert problem["reason"] == "the account's balances could not be read: EAPI:Invalid signature"


async def test_the_start_names_the_state_dir_in_full(e2e: E2E, monkeypatch: pytest.MonkeyPatch,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    """`--state-dir state` (or a config's relative state_dir) is relative to wherever the engine
    was started: the start's log line said `state_dir=state`, not which folder that was."""
    e2e.write_rules(ORDERS)
    monkeypatch.chdir(e2e.tmp)
    e2e.state_dir = Path("state")
    with caplog.at_level("INFO", logger="rules_engine.service"):
        async with e2e.running():
            pass
    assert any(r.getMessage().endswith(f"state_dir={e2e.tmp / 'state'}") for r in caplog.records
               if r.getMessage().startswith("engine started:"))


@pytest.mark.parametrize("mode, level", [("live", "WARNING"), ("dry-run", "INFO")])
async def test_a_missing_admin_token_is_a_warning_where_the_account_is_real(
        e2e: E2E, mode: str, level: str, caplog: pytest.LogCaptureFixture) -> None:
    """kill_switch.token_env set (the going-live checklist) but its variable missing from the
    service's environment: /kill is off, which was said at info only, also in live mode."""
    e2e.write_rules(ORDERS)
    del e2e.environ["ADMIN_TOKEN"]
    with caplog.at_level("INFO", logger="rules_engine.service"):
        async with e2e.running(cli_live=mode == "live", mode=mode, dead_man_switch={"enabled": False}):
            pass
    [record] = [r for r in caplog.records if r.getMessage().startswith("no admin token")]
    assert record.levelname == level
    assert "environment variable ADMIN_TOKEN is not set" in record.getMessage()
    assert "SIGUSR1 and the KILL file still work" in record.getMessage()


async def test_an_empty_rules_folder_is_a_warning(e2e: E2E, caplog: pytest.LogCaptureFixture) -> None:
    """A rules folder a deployment left empty started an engine with no rules, said at info only
    ('engine started: ... rules=0'), where `validate` refuses it (exit 2)."""
    with caplog.at_level("WARNING", logger="rules_engine.service"):
        async with e2e.running():
            pass
    assert any(r.getMessage() == f"no rules under {e2e.rules_dir}: the engine runs with none until rule files "
               "are added there (it reloads on its own)" for r in caplog.records)


@pytest.mark.parametrize("token, said", [(True, "signals, kill)"), (False, "signals, kill disabled: no admin token)")])
async def test_the_listening_line_says_whether_kill_is_served(e2e: E2E, token: bool, said: str,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    """`rules-engine run`'s listening line named /kill even where no admin token is configured
    and /kill answers 503 `disabled`."""
    from rules_engine.commands.run import _serve

    e2e.write_rules(ORDERS)
    if not token:
        del e2e.environ["ADMIN_TOKEN"]
    service = e2e.service()
    with caplog.at_level("INFO", logger="rules_engine.run"):
        serving = asyncio.create_task(_serve(service))
        await wait_for(lambda: any(r.getMessage().startswith("listening on") for r in caplog.records),
                       timeout=30)
        await service.stop()
        assert await asyncio.wait_for(serving, 30) == 0
    [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("listening on")]
    assert line.endswith(f"(status page, healthz, readyz, metrics, {said}")
