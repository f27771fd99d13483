"""The service's small parts: what rules need from the adapters, structured logs with
secrets masked, per-service metrics registries, the rule-file watcher."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os

from rules_engine.config import parse_config
from rules_engine.redact import register_secret
from rules_engine.rules import load_rules_text
from rules_engine.service.logs import setup_logging
from rules_engine.service.metrics import ServiceMetrics
from rules_engine.needs import rule_needs
from rules_engine.service.rule_watch import RuleWatcher, rule_files_signature
from rules_engine.service.startup import signal_sources

RULES = """
version: 1
rules:
  - id: spot
    triggers: [{type: price, symbol: BTC/USD, crosses_above: 70000}]
    actions: [{type: place_order, pair: ETH/USD, side: buy, ordertype: market, volume: 1}]
  - id: fut
    triggers: [{type: price, symbol: pf_ethusd, market: futures, crosses_below: 2000}]
    actions: [{type: futures_send_order, symbol: PF_SOLUSD, side: sell, order_type: mkt, size: 1}]
  - id: beat
    triggers: [{type: timer, every: 5m}, {type: signal, source: bot}]
    actions: [{type: log, message: x}]
  - id: dormant
    enabled: false
    triggers: [{type: price, symbol: XRPUSD, crosses_above: 1}, {type: signal, source: other}]
    actions: [{type: log, message: x}]
"""


def test_rule_needs_lists_watched_and_traded_symbols_timers_sources_and_hashes() -> None:
    ruleset = load_rules_text(RULES, "r.yaml").ruleset
    needs = rule_needs(ruleset)
    assert needs.spot_symbols == {"XBTUSD", "ETHUSD"}
    assert needs.futures_symbols == {"PF_ETHUSD", "PF_SOLUSD"}
    assert [(rule, index) for rule, index, _ in needs.timers] == [("beat", 0)]
    assert needs.signal_sources == {"bot"}
    assert set(needs.rule_hashes) == {"spot", "fut", "beat", "dormant"}
    assert len(set(needs.rule_hashes.values())) == 1 and len(needs.rule_hashes["spot"]) == 64


def test_json_logs_are_one_object_per_line_with_secrets_masked() -> None:
    register_secret("hunter2-secret-value")
    stream = io.StringIO()
    handler = setup_logging("json", logging.INFO, stream)
    try:
        logging.getLogger("rules_engine.test").warning("key is %s", "hunter2-secret-value")
    finally:
        logging.getLogger().removeHandler(handler)
    entry = json.loads(stream.getvalue().strip().splitlines()[-1])
    assert entry["level"] == "warning" and entry["logger"] == "rules_engine.test"
    assert entry["msg"] == "key is ***"


def test_text_logs_are_key_value() -> None:
    stream = io.StringIO()
    handler = setup_logging("text", logging.INFO, stream)
    try:
        logging.getLogger("rules_engine.test").info('said "hi"')
    finally:
        logging.getLogger().removeHandler(handler)
    assert 'level=info logger=rules_engine.test msg="said \\"hi\\""' in stream.getvalue()


def test_each_service_has_its_own_metrics_registry() -> None:
    first, second = ServiceMetrics(), ServiceMetrics()
    first.ticks.labels("spot").inc(3)
    assert b'rules_engine_ticks_total{market="spot"} 3.0' in first.render()
    assert b'rules_engine_ticks_total{market="spot"}' not in second.render()


def test_watcher_reports_edits_new_files_and_missing_folders(tmp_path) -> None:
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "a.yaml").write_text("x")
    changes: list[int] = []

    async def on_change() -> None:
        changes.append(1)

    async def scenario() -> None:
        watcher = RuleWatcher([folder], on_change, interval=0.01)
        task = asyncio.ensure_future(watcher.run())
        try:
            (folder / "b.yaml").write_text("y")
            while not changes:
                await asyncio.sleep(0.01)
            os.utime(folder / "a.yaml", ns=(1, 1))
            while len(changes) < 2:
                await asyncio.sleep(0.01)
        finally:
            task.cancel()

    asyncio.run(asyncio.wait_for(scenario(), 10))
    assert len(changes) == 2
    assert isinstance(rule_files_signature([tmp_path / "gone"]), str)


def test_watchers_sharing_signatures_read_a_rule_set_once_and_still_see_an_edit(tmp_path):
    """A worker's cells on one rule set: one read of its files per `max_age` for all their
    watchers (each cell's own listing and stat-ing every second was several percent of a
    300-cell worker's CPU), and an edit still reaches every cell."""
    from rules_engine.service.rule_watch import SharedSignatures

    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "a.yaml").write_text("x")
    clock = [0.0]
    shared = SharedSignatures(max_age=0.5, monotonic=lambda: clock[0])
    changes: list[int] = []

    async def scenario() -> None:
        async def on_change(n: int) -> None:
            changes.append(n)

        watchers = [RuleWatcher([folder], lambda n=n: on_change(n), interval=0.01, shared=shared) for n in range(20)]
        tasks = [asyncio.ensure_future(w.run()) for w in watchers]
        try:
            while shared.reads == 0:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.1)  # polls by each of the 20 watchers, within max_age of the read
            assert shared.reads == 1 and not changes
            (folder / "b.yaml").write_text("y")
            await asyncio.sleep(0.05)
            assert not changes  # not read again before max_age
            clock[0] += 0.5
            while len(changes) < 20:
                await asyncio.sleep(0.01)
            assert shared.reads == 2
        finally:
            for task in tasks:
                task.cancel()

    asyncio.run(asyncio.wait_for(scenario(), 10))
    assert sorted(changes) == list(range(20))


def test_a_short_signal_secret_is_accepted_with_a_warning(caplog) -> None:
    config = parse_config({"signals": {"short": {"passphrase_env": "SHORT_PASS"},
                                       "long": {"secret_env": "LONG_SECRET"}}}, "<test>")
    environ = {"SHORT_PASS": "Zq9#xW", "LONG_SECRET": "a-long-random-signal-secret-1234"}
    with caplog.at_level(logging.WARNING, logger="rules_engine.service"):
        sources = signal_sources(config, rule_needs(load_rules_text(RULES).ruleset), environ)
    assert set(sources) == {"short", "long"}
    warnings = [r.getMessage() for r in caplog.records if "characters long" in r.getMessage()]
    assert len(warnings) == 1 and "'short': its passphrase is 6 characters long; use 16 or more" in warnings[0]


def test_an_undeclared_signal_source_is_a_warning_only_where_signals_come_by_webhook(caplog) -> None:
    """Without a store the rules' undeclared source can never fire (its webhook POSTs are refused):
    a warning. On the PostgreSQL store (a `run` or a worker's cell) its signals come fanned out by
    `rules-engine intake`, which the engine config need not declare: no warning that they are refused."""
    needs = rule_needs(load_rules_text(RULES).ruleset)  # sources bot (undeclared) and other (a disabled rule)
    with caplog.at_level(logging.INFO, logger="rules_engine.service"):
        signal_sources(parse_config({}, "<test>"), needs, {})
    [alone] = [r for r in caplog.records if "'bot'" in r.getMessage()]
    assert alone.levelno == logging.WARNING and "POST /signals/bot will be refused" in alone.getMessage()
    caplog.clear()
    store = parse_config({"store": {"url": "postgresql://engine@db/rules", "key": "k1"}}, "<test>")
    with caplog.at_level(logging.INFO, logger="rules_engine.service"):
        signal_sources(store, needs, {})
    [fanned] = [r for r in caplog.records if "'bot'" in r.getMessage()]
    assert fanned.levelno == logging.INFO and "rules-engine intake" in fanned.getMessage()


def test_a_rule_listening_to_an_undeclared_source_is_warned_with_the_nearest_declared_one(caplog) -> None:
    config = parse_config({"signals": {"bott": {"secret_env": "LONG_SECRET"}}}, "<test>")
    environ = {"LONG_SECRET": "a-long-random-signal-secret-1234"}
    with caplog.at_level(logging.WARNING, logger="rules_engine.service"):
        signal_sources(config, rule_needs(load_rules_text(RULES).ruleset), environ)
    warnings = [r.getMessage() for r in caplog.records if "does not declare" in r.getMessage()]
    assert warnings == [
        "rules listen to signal source 'bot', which the engine config does not declare: POST /signals/bot will be "
        "refused (did you mean 'bott'?)",
    ]


def test_price_of_a_futures_id_subscribes_the_futures_feed_whatever_its_kind() -> None:
    """A fixed-maturity id carries its expiry after a second underscore (FI_XBTUSD_260327): it
    was not taken for a futures symbol, so `price_of` of it never had a price. Vanilla ids
    (PV_, FV_) are futures symbols everywhere alike (the rule tests took PV_ and not FV_)."""
    text = """\
version: 1
rules:
  - id: basis
    triggers: [{type: timer, every: 1m}]
    when: "price_of('FI_XBTUSD_260327') > price_of('PF_XBTUSD') and price_of('pv_xrpxbt') > 0"
    actions: [{type: log, message: x, if: "price_of('FV_XRPXBT_260327') > 0"}]
"""
    loaded = load_rules_text(text, "r.yaml")
    assert loaded.ruleset is not None, [str(e) for e in loaded.errors]
    assert rule_needs(loaded.ruleset).futures_symbols == {"FI_XBTUSD_260327", "PF_XBTUSD", "PV_XRPXBT",
                                                          "FV_XRPXBT_260327"}
