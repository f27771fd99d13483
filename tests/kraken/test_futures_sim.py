"""FuturesClient end to end against the simulator."""

import threading
from decimal import Decimal

import pytest
from kraken_rest_fakes import SECRET, FakeClock

from rules_engine.kraken import errors as E
from rules_engine.kraken.credentials import Credentials
from rules_engine.kraken.futures_limiter import FuturesRateLimiter
from rules_engine.kraken.futures_rest import FuturesClient
from rules_engine.kraken.nonce import NonceSource
from rules_engine.sim.config import Account, SimConfig
from rules_engine.sim.server import Simulator

KEY = "fk1"
SYMBOL = "PF_XBTUSD"


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def sim(clock):
    config = SimConfig(
        accounts=[Account(KEY, SECRET, {"ZUSD": "10000"}, futures_balances={"USD": "5000"})],
        prices={"XBTUSD": "60000"},
        tick_interval=0,
    )
    simulator = Simulator(config, clock=clock)
    with simulator.running() as endpoints:
        simulator.test_endpoints = endpoints
        yield simulator


def make_client(sim, clock, creds=Credentials(KEY, SECRET), **kwargs):
    kwargs.setdefault("nonce_source", NonceSource(unit_ns=1_000_000))
    kwargs.setdefault("timeout", (2.0, 2.0))
    return FuturesClient(creds, sim.test_endpoints, clock=clock, sleep=clock.sleep, **kwargs)


@pytest.fixture
def client(sim, clock):
    with make_client(sim, clock) as futures:
        yield futures


def test_tickers_and_accounts(client):
    symbols = {t["symbol"] for t in client.tickers()}
    assert SYMBOL in symbols
    flex = client.accounts()["flex"]
    assert flex["currencies"]["USD"]["quantity"] == 5000


def test_place_list_cancel(client, sim):
    placed = client.send_order("lmt", SYMBOL, "buy", "0.01", limit_price="50000", cli_ord_id="f-1")
    assert placed.status == "placed" and placed.order_id and not placed.recovered
    assert [o["cliOrdId"] for o in client.open_orders()] == ["f-1"]
    cancelled = client.cancel_order(cli_ord_id="f-1")
    assert cancelled["status"] == "cancelled" and cancelled["order_id"] == placed.order_id
    assert client.open_orders() == []


def test_market_order_opens_a_position(client):
    assert client.send_order("mkt", SYMBOL, "buy", "0.01").status == "filled"
    (position,) = client.open_positions()
    assert position["symbol"] == SYMBOL and position["side"] == "long"


def test_cancel_all_and_dead_man_switch(client, sim, clock):
    client.send_order("lmt", SYMBOL, "buy", "0.01", limit_price="50000")
    client.send_order("lmt", SYMBOL, "sell", "0.01", limit_price="70000")
    assert len(client.cancel_all_orders(SYMBOL)["cancelledOrders"]) == 2
    assert client.cancel_all_orders()["status"] == "noOrdersToCancel"
    client.send_order("lmt", SYMBOL, "buy", "0.01", limit_price="50000")
    assert client.cancel_all_orders_after(60)["triggerTime"] != "0"
    clock.now += 61
    sim.advance()
    assert client.open_orders() == []
    assert client.cancel_all_orders_after(0)["triggerTime"] == "0"


def test_rejections_inside_send_status(client):
    with pytest.raises(E.InsufficientFunds):
        client.send_order("lmt", SYMBOL, "buy", "100", limit_price="60000")
    client.send_order("lmt", SYMBOL, "buy", "0.01", limit_price="50000", cli_ord_id="dup")
    with pytest.raises(E.DuplicateOrder):
        client.send_order("lmt", SYMBOL, "buy", "0.01", limit_price="50000", cli_ord_id="dup")
    with pytest.raises(E.UnknownOrder):
        client.cancel_order("no-such-order")


def test_error_envelopes(sim, clock, client):
    with pytest.raises(E.AuthError):
        make_client(sim, clock, Credentials("nobody", SECRET)).accounts()
    with pytest.raises(E.InvalidArguments):
        client.send_order("lmt", "PF_NOPEUSD", "buy", "1", limit_price="1")
    sim.faults.fail_next("accounts", "Unavailable")
    assert client.accounts()["flex"]  # a read rides it out
    sim.faults.force_rate_limit(KEY)
    assert client.open_positions() == []


def test_timeout_after_accept_ends_with_exactly_one_order(sim, clock):
    client = make_client(sim, clock, timeout=(2.0, 0.3))
    sim.faults.timeout_after_accept("sendorder", delay=5.0)
    result = client.send_order("lmt", SYMBOL, "buy", "0.01", limit_price="50000", cli_ord_id="f-42")
    assert result.recovered
    assert [o["cliOrdId"] for o in client.open_orders()] == ["f-42"]
    assert result.order_id == client.open_orders()[0]["order_id"]


def test_threads_on_one_key_get_no_nonce_errors(client):
    failures: list[BaseException] = []

    def worker(n):
        try:
            for i in range(3):
                client.send_order("lmt", SYMBOL, "buy", "0.001", limit_price=str(Decimal(40000 + n * 10 + i)))
                client.accounts()
        except BaseException as exc:  # noqa: BLE001 - asserted below
            failures.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == [] and len(client.open_orders()) == 24


def _refusals(client):
    """Count the simulator's apiLimitExceeded answers the client receives."""
    seen = []
    request = client.transport.request

    def counting(*args, **kwargs):
        answer = request(*args, **kwargs)
        if isinstance(answer, dict) and answer.get("error") == "apiLimitExceeded":
            seen.append(kwargs.get("api_method"))
        return answer

    client.transport.request = counting
    return seen


def test_a_burst_of_orders_is_paced_not_refused(sim, clock):
    with make_client(sim, clock) as client:
        refused = _refusals(client)
        for n in range(60):
            placed = client.send_order("lmt", SYMBOL, "buy", "0.001", limit_price="30000", cli_ord_id=f"burst-{n}")
            assert placed.status == "placed"
        assert refused == []
        assert client.limiter.waited >= 1.9, "600 units: 100 over the budget, 2 s of draining"


def test_without_pacing_the_simulator_refuses(sim, clock):
    never_waits = FuturesRateLimiter(clock=clock, sleep=clock.sleep, headroom=-10_000)
    with make_client(sim, clock, limiter=never_waits) as client:
        refused = _refusals(client)
        for n in range(60):
            try:
                client.send_order("lmt", SYMBOL, "buy", "0.001", limit_price="30000", cli_ord_id=f"raw-{n}")
            except E.KrakenError:
                pass
        assert refused and refused[0] == "sendorder", "Kraken's budget holds 50 sendorders, not 60"


def test_orders_status_names_open_and_recently_finished_orders(client, sim, clock):
    client.send_order("lmt", SYMBOL, "buy", "0.01", limit_price="50000", cli_ord_id="st-1")
    [entry] = client.orders_status(cli_ord_ids=["st-1"])
    assert entry["status"] == "ENTERED_BOOK" and entry["order"]["cliOrdId"] == "st-1"
    client.cancel_order(cli_ord_id="st-1")
    [entry] = client.orders_status(cli_ord_ids=["st-1"])
    assert entry["status"] == "CANCELLED"
    clock.sleep(5.5)
    assert client.orders_status(cli_ord_ids=["st-1"]) == [], "Kraken answers for 5 seconds after the end"
    assert client.orders_status(cli_ord_ids=["nobody"]) == []
