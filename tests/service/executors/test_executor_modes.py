"""The mode gate, build_executor and the balance cache."""

from decimal import Decimal as D

import pytest
from executor_fixtures import KEY, SECRET
from executor_fixtures import audit, clock, sim, store  # noqa: F401  (pytest fixtures)

from rules_engine.config import parse_config
from rules_engine.core import intents as it
from rules_engine.kraken.credentials import key_fingerprint
from rules_engine.redact import redact
from rules_engine.execution import (
    BalanceCache,
    Dispatcher,
    DryRunExecutor,
    LiveExecutor,
    LiveModeRefused,
    ValidateExecutor,
    build_executor,
    check_live_allowed,
    load_credentials,
)
from rules_engine.execution.factory import NONCE_LEASE_SECONDS
from rules_engine.execution.report import ExecutionReport, ok
from rules_engine.service.off_path import keep_nonces_ahead, nonce_sources

ENV = {"KRAKEN_API_KEY": KEY, "KRAKEN_API_SECRET": SECRET}


@pytest.mark.parametrize("mode, cli_live", [("dry-run", False), ("validate", False), ("live", True)])
def test_allowed_combinations(mode, cli_live):
    check_live_allowed(mode, cli_live)
    check_live_allowed(mode, cli_live, credentials_present=True)


@pytest.mark.parametrize(
    "mode, cli_live, present, words",
    [
        ("live", False, None, "--live was not given"),
        ("dry-run", True, None, "Set `mode: live`"),
        ("validate", True, None, "mode: validate"),
        ("live", True, False, "no API credentials"),
        ("validate", False, False, "no API credentials"),
        ("paper", False, None, "unknown mode"),
    ],
)
def test_refused_combinations_say_why(mode, cli_live, present, words):
    with pytest.raises(LiveModeRefused) as caught:
        check_live_allowed(mode, cli_live, credentials_present=present)
    assert words in str(caught.value)


def test_dry_run_needs_no_credentials():
    check_live_allowed("dry-run", False, credentials_present=False)


def config(mode="dry-run", **extra):
    return parse_config({"mode": mode, "paper_wallet": {"balances": {"USD": "2500"}}, "balance_cache": "5s", **extra})


def test_build_dry_run_opens_a_paper_wallet_from_the_config(store):
    executor = build_executor(config(), cli_live=False, store=store, environ={})
    assert isinstance(executor, BalanceCache) and isinstance(executor.inner, DryRunExecutor)
    assert executor.mode == "dry-run" and executor.seconds == 5
    assert store.load_paper_wallet()["exchange"]["balances"]["paper"] == {"ZUSD": "2500"}


def test_build_refuses_live_without_the_flag_and_validate_without_credentials(store):
    with pytest.raises(LiveModeRefused, match="--live"):
        build_executor(config("live"), cli_live=False, store=store, environ=ENV)
    with pytest.raises(LiveModeRefused, match="KRAKEN_API_KEY and KRAKEN_API_SECRET"):
        build_executor(config("validate"), cli_live=False, store=store, environ={})
    with pytest.raises(LiveModeRefused, match="cannot load"):
        build_executor(config("validate"), cli_live=False, store=store, environ={"KRAKEN_API_KEY": KEY})


def test_load_credentials_registers_the_secret_for_redaction(tmp_path):
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET + "\n")
    creds = load_credentials("K", "S", {"K": KEY, "S_FILE": str(secret_file)})
    assert creds is not None and creds.fingerprint == key_fingerprint(KEY)
    assert redact(f"oops {SECRET}") == "oops ***"
    assert load_credentials("K", "S", {}) is None


def test_build_validate_and_live_executors(sim, store):
    url = sim.test_endpoints.spot_rest
    validate = build_executor(config("validate", kraken={"simulator": url}), cli_live=False, store=store, environ=ENV)
    assert isinstance(validate.inner, ValidateExecutor)
    validate.close()  # an executor holds its key's lease until closed: one engine per key
    env = {**ENV, "KRAKEN_FUTURES_API_KEY": KEY, "KRAKEN_FUTURES_API_SECRET": SECRET}
    live = build_executor(config("live", kraken={"simulator": url}), cli_live=True, store=store, environ=env)
    assert isinstance(live.inner, LiveExecutor) and live.inner.futures is not None
    live.close()
    spot_only = build_executor(config("live", kraken={"simulator": url}), cli_live=True, store=store, environ=ENV)
    assert spot_only.inner.futures is None
    spot_only.close()


def test_built_live_executor_trades_on_the_simulator_and_persists_nonces(sim, clock, store, audit):
    cfg = config("live", kraken={"simulator": sim.test_endpoints.spot_rest})
    executor = build_executor(cfg, cli_live=True, store=store, environ=ENV,
                              client_options={"clock": clock, "sleep": clock.sleep})
    dispatcher = Dispatcher(executor, store, audit, mode="live")
    intent = it.PlaceOrder(intent_id="r#1/0", rule_id="r", decision_id="r#1", cl_ord_id="built-1", pair="XBTUSD",
                           side="buy", ordertype="limit", volume=D("0.01"), price=D("50000"))
    assert dispatcher.dispatch(intent).result.ok
    assert [o.cl_ord_id for o in sim.exchange.open_orders(KEY)] == ["built-1"]
    assert store.load(key_fingerprint(KEY)) > 0  # the nonce high-water mark lives in the state store
    executor.close()


def test_the_service_keeps_a_live_executors_nonce_reservations_ahead(sim, clock, store):
    cfg = config("live", kraken={"simulator": sim.test_endpoints.spot_rest})
    executor = build_executor(cfg, cli_live=True, store=store, environ=ENV)
    try:
        [source] = nonce_sources(executor)
        assert source is executor.inner.spot.nonces
        first = source.next(key_fingerprint(KEY))
        reserved = store.load(key_fingerprint(KEY))
        assert reserved >= first + NONCE_LEASE_SECONDS * 10**9 - 10**9  # a lease of seconds, in nanoseconds
        assert keep_nonces_ahead(executor) == 0  # nearly all of it is left
        source.lease = 4 * (reserved - first)  # as if most of a (longer) lease were used up
        assert keep_nonces_ahead(executor) == 1 and store.load(key_fingerprint(KEY)) > reserved
    finally:
        executor.close()
    assert nonce_sources(build_executor(config(), cli_live=False, store=store, environ={})) == []


class CountingExecutor:
    mode = "fake"

    def __init__(self):
        self.reads = 0

    def execute(self, intent, now):
        if isinstance(intent, it.ReadBalance):
            self.reads += 1
            return ExecutionReport(ok(intent, now, {"balances": {"ZUSD": str(self.reads)}}))
        return ExecutionReport(ok(intent, now))

    def observe(self, tick):
        return []

    def reconcile(self, decision, now=None):
        raise AssertionError("not used")

    def close(self):
        pass


def read(n):
    return it.ReadBalance(intent_id=f"b{n}", rule_id="r", decision_id="r#1")


def test_balance_reads_within_the_window_come_from_the_cache():
    inner = CountingExecutor()
    cache = BalanceCache(inner, 10)
    first = cache.execute(read(1), 100.0)
    second = cache.execute(read(2), 109.0)
    assert inner.reads == 1
    assert second.result.intent_id == "b2" and second.result.data == first.result.data
    assert second.response == {"cached": True, "age": 9.0, "read_at": 100.0}
    cache.execute(read(3), 110.0)  # window over
    assert inner.reads == 2


def test_an_order_or_cancel_drops_the_cached_balance():
    inner = CountingExecutor()
    cache = BalanceCache(inner, 10)
    cache.execute(read(1), 100.0)
    cache.execute(it.CancelAll(intent_id="a", rule_id=None, decision_id=None), 101.0)
    cache.execute(read(2), 102.0)
    assert inner.reads == 2
    futures = it.ReadBalance(intent_id="f", rule_id="r", decision_id="r#1", market="futures")
    cache.execute(futures, 103.0)
    assert inner.reads == 3  # cached per market


def test_zero_seconds_disables_the_cache():
    inner = CountingExecutor()
    cache = BalanceCache(inner, 0)
    cache.execute(read(1), 100.0)
    cache.execute(read(2), 100.0)
    assert inner.reads == 2
