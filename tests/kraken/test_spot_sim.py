"""SpotClient end to end against the simulator (127.0.0.1, free port, shared fake clock)."""

import threading
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from kraken_rest_fakes import SECRET, FakeClock

from rules_engine.kraken import errors as E
from rules_engine.kraken.credentials import Credentials
from rules_engine.kraken.endpoints import KrakenEndpoints
from rules_engine.kraken.nonce import FileNonceStore, NonceSource
from rules_engine.kraken.spot_rest import SpotClient
from rules_engine.sim.config import Account, SimConfig
from rules_engine.sim.server import Simulator

KEY = "k1"
CREDS = Credentials(KEY, SECRET)


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def sim(clock):
    config = SimConfig(
        accounts=[Account(KEY, SECRET, {"ZUSD": "10000", "XXBT": "1"}, tier="starter")],
        prices={"XBTUSD": "60000"},
        seed=1,
        tick_interval=0,
        lockout_after=3,
    )
    simulator = Simulator(config, clock=clock)
    with simulator.running() as endpoints:
        simulator.test_endpoints = endpoints
        yield simulator


def make_client(sim, clock, creds=CREDS, **kwargs):
    kwargs.setdefault("nonce_source", NonceSource())
    kwargs.setdefault("timeout", (2.0, 2.0))
    return SpotClient(creds, sim.test_endpoints, clock=clock, sleep=clock.sleep, **kwargs)


@pytest.fixture
def client(sim, clock):
    with make_client(sim, clock) as spot:
        yield spot


def open_orders(sim):
    return sim.exchange.open_orders(KEY)


def test_public_market_data(client):
    assert client.time()["unixtime"] > 0
    assert client.system_status()["status"] == "online"
    pairs = client.asset_pairs("XBTUSD")
    assert [p["altname"] for p in pairs.values()] == ["XBTUSD"]
    ticker = client.ticker("XBTUSD")
    (entry,) = ticker.values()
    assert Decimal(entry["c"][0]) == Decimal("60000")
    assert "last" in client.ohlc("XBTUSD", interval=1)


def test_balances(client):
    balance = client.balance()
    assert Decimal(balance["ZUSD"]) == 10000 and Decimal(balance["XXBT"]) == 1
    assert isinstance(balance["ZUSD"], str)  # Kraken's text, untouched
    assert Decimal(client.balance_ex()["ZUSD"]["balance"]) == 10000
    assert Decimal(client.trade_balance()["eb"]) == Decimal("70000")
    assert client.get_websockets_token()["expires"] == 900


@pytest.mark.parametrize("body_format", ["form", "json"])
def test_place_query_cancel(sim, clock, body_format):
    client = make_client(sim, clock, body_format=body_format)
    placed = client.add_order("XBTUSD", "buy", "limit", "0.01", price="50000", cl_ord_id="place-1")
    (txid,) = placed.txid
    assert not placed.recovered and "buy 0.01" in placed.descr["order"] and "50000" in placed.descr["order"]
    assert client.query_orders(txid)[txid]["status"] == "open"
    assert list(client.open_orders(cl_ord_id="place-1")["open"]) == [txid]
    assert client.find_order("place-1")[0] == txid
    assert client.cancel_order(txid)["count"] == 1
    assert client.query_orders([txid])[txid]["status"] == "canceled"
    assert open_orders(sim) == []


def test_validate_only_places_nothing(client, sim):
    result = client.add_order("XBTUSD", "buy", "limit", "0.01", price="50000", validate=True)
    assert result.validated_only and result.txid == () and result.descr["order"]
    assert open_orders(sim) == []


def test_resting_order_fills_when_the_market_moves(client, sim):
    (txid,) = client.add_order("XBTUSD", "buy", "limit", "0.01", price="59500", cl_ord_id="fill-1").txid
    sim.set_price("XBTUSD", Decimal("59000"))
    order = client.query_orders(txid)[txid]
    assert order["status"] == "closed" and Decimal(order["vol_exec"]) == Decimal("0.01")
    assert client.find_order("fill-1")[0] == txid  # found among the closed orders
    assert Decimal(client.balance()["XXBT"]) == Decimal("1.01")


def test_cancel_by_client_order_id_and_cancel_all(client, sim):
    client.add_order("XBTUSD", "buy", "limit", "0.01", price="50000", cl_ord_id="a")
    client.add_order("XBTUSD", "buy", "limit", "0.01", price="50001", cl_ord_id="b")
    client.add_order("XBTUSD", "sell", "limit", "0.01", price="70000", cl_ord_id="c")
    assert client.cancel_order(cl_ord_id="a")["count"] == 1
    assert client.cancel_all()["count"] == 2
    assert open_orders(sim) == []


def test_dead_man_switch_cancels_everything_when_not_refreshed(client, sim, clock):
    client.add_order("XBTUSD", "buy", "limit", "0.01", price="50000")
    armed = client.cancel_all_orders_after(60)
    assert armed["triggerTime"] != "0"
    clock.now += 30
    sim.advance()
    assert len(open_orders(sim)) == 1
    client.cancel_all_orders_after(60)  # refreshed: the trigger moves on
    clock.now += 45
    sim.advance()
    assert len(open_orders(sim)) == 1
    clock.now += 16
    sim.advance()
    assert open_orders(sim) == []
    assert client.cancel_all_orders_after(0)["triggerTime"] == "0"


# --- every error class over the wire -------------------------------------------------


def test_auth_errors(sim, clock):
    with pytest.raises(E.InvalidKey):
        make_client(sim, clock, Credentials("no-such-key", SECRET)).balance()
    other_secret = "b3RoZXIgc2VjcmV0IGJ5dGVz"
    with pytest.raises(E.InvalidSignature) as caught:
        make_client(sim, clock, Credentials(KEY, other_secret)).balance()
    assert other_secret not in str(caught.value) and KEY not in str(caught.value)


def test_lockout_after_repeated_invalid_keys(sim, clock):
    stranger = make_client(sim, clock, Credentials("no-such-key", SECRET))
    for _ in range(3):
        with pytest.raises(E.InvalidKey):
            stranger.balance()
    with pytest.raises(E.Lockout) as caught:
        stranger.balance()
    assert not caught.value.retry_safe


def test_nonce_error_from_a_second_nonce_scale(client, sim, clock):
    client.balance()  # nanosecond nonces
    millis = make_client(sim, clock, nonce_source=NonceSource(unit_ns=1_000_000))
    with pytest.raises(E.NonceError):
        millis.balance()


@pytest.mark.parametrize(
    "call, cls",
    [
        (lambda c: c.add_order("XBTUSD", "buy", "limit", "100", price="60000"), E.InsufficientFunds),
        (lambda c: c.add_order("XBTUSD", "buy", "bogus", "0.01"), E.InvalidArguments),
        (lambda c: c.add_order("NOPEUSD", "buy", "limit", "0.01", price="1"), E.UnknownPair),
        (lambda c: c.ticker("NOPEUSD"), E.UnknownPair),
        (lambda c: c.cancel_order("OAAAAA-BBBBB-CCCCCC"), E.UnknownOrder),
        (lambda c: c.query_orders("OAAAAA-BBBBB-CCCCCC"), E.UnknownOrder),
    ],
)
def test_rejections(client, sim, call, cls):
    with pytest.raises(E.KrakenError) as caught:
        call(client)
    assert isinstance(caught.value, cls)
    assert open_orders(sim) == []


def test_injected_kraken_errors(client, sim):
    sim.faults.fail_next("Balance", "EGeneral:Permission denied")
    with pytest.raises(E.PermissionDenied):
        client.balance()
    sim.set_system_status("cancel_only")
    with pytest.raises(E.MarketRestricted):
        client.add_order("XBTUSD", "buy", "limit", "0.01", price="50000")
    sim.set_system_status("online")


def test_reads_ride_out_service_errors_and_bad_gateways(client, sim, clock):
    sim.faults.fail_next("Balance", "EService:Busy")
    sim.faults.http_status("Balance", 502)
    assert Decimal(client.balance()["ZUSD"]) == 10000
    assert len(clock.sleeps) >= 2
    sim.faults.http_status("OpenOrders", 503, count=10)
    with pytest.raises(E.HTTPStatusError) as caught:
        client.open_orders()
    assert caught.value.status == 503


def test_read_timeout_is_retried(sim, clock):
    client = make_client(sim, clock, timeout=(2.0, 0.3))
    sim.faults.delay("Balance", 1.0, count=1)
    assert Decimal(client.balance()["ZUSD"]) == 10000


def test_connection_refused_is_a_connect_error(clock):
    with socket_closed_port() as port:
        client = SpotClient(CREDS, KrakenEndpoints.local("127.0.0.1", port), clock=clock, sleep=clock.sleep)
        with pytest.raises(E.ConnectError) as caught:
            client.time()
    assert caught.value.retry_safe


def socket_closed_port():
    import contextlib
    import socket

    @contextlib.contextmanager
    def closed():
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.close()
        yield port

    return closed()


# --- at most once ----------------------------------------------------------------------


def test_timeout_after_accept_ends_with_exactly_one_order(sim, clock):
    client = make_client(sim, clock, timeout=(2.0, 0.3))
    sim.faults.timeout_after_accept("AddOrder", delay=5.0)
    result = client.add_order("XBTUSD", "buy", "limit", "0.01", price="50000", cl_ord_id="decision-42")
    assert result.recovered
    (order,) = open_orders(sim)
    assert order.cl_ord_id == "decision-42" and result.txid == (order.txid,)


def test_dropped_connection_after_accept_ends_with_exactly_one_order(client, sim):
    sim.faults.timeout_after_accept("AddOrder", delay=0)
    result = client.add_order("XBTUSD", "sell", "limit", "0.01", price="70000")
    assert result.recovered
    assert [o.cl_ord_id for o in open_orders(sim)] == [result.cl_ord_id]


def test_service_unavailable_on_add_order_looks_up_and_never_resends_blind(client, sim):
    sim.faults.fail_next("AddOrder", "EService:Unavailable")
    with pytest.raises(E.OrderStateUnknown):
        client.add_order("XBTUSD", "buy", "limit", "0.01", price="50000", cl_ord_id="decision-43")
    assert open_orders(sim) == []


def test_not_found_after_the_deadline_is_not_placed(client, sim, clock):
    sim.faults.fail_next("AddOrder", "EService:Unavailable")
    deadline = datetime.fromtimestamp(clock.now, timezone.utc) + timedelta(seconds=10)
    with pytest.raises(E.OrderNotPlaced):
        client.add_order("XBTUSD", "buy", "limit", "0.01", price="50000", deadline=deadline)
    assert open_orders(sim) == []


# --- rate limits -----------------------------------------------------------------------


def test_limiter_keeps_a_burst_under_the_rest_counter(client, sim, clock):
    start = clock.now
    for _ in range(40):
        client.balance()  # would be refused from the 16th call on without the limiter
    assert clock.now - start >= (40 - 15) / 0.33 - 1e-6
    assert sim.rest_counter(KEY).value(clock.now) <= 15


def test_rate_limited_by_kraken_backs_off_and_succeeds(client, sim, clock):
    sim.faults.force_rate_limit(KEY)
    start = clock.now
    assert Decimal(client.balance()["ZUSD"]) == 10000
    assert clock.now - start >= 1 / 0.33  # the limiter took the counter as full: ~3 s for one more call
    sim.faults.force_rate_limit(KEY, trading=True)
    assert client.add_order("XBTUSD", "buy", "limit", "0.01", price="50000").txid


def test_trading_counter_slows_a_burst_of_orders(client, sim, clock):
    start = clock.now
    for i in range(30):
        (txid,) = client.add_order("XBTUSD", "buy", "limit", "0.01", price=str(40000 + i)).txid
        client.cancel_order(txid)  # +8 each: fresh cancels are the expensive ones
    assert clock.now - start > 0
    assert sim.spot_api.trade_counter(KEY, "XBTUSD", clock.now) <= 60


# --- nonces --------------------------------------------------------------------------------


def test_many_threads_on_one_key_never_see_a_nonce_error(sim, clock):
    client = make_client(sim, clock)
    # a second client on the same key shares its nonce source and its limiter
    twin = make_client(sim, clock, nonce_source=client.nonces, limiter=client.limiter)
    failures: list[BaseException] = []
    placed: list[str] = []

    def worker(n: int, spot: SpotClient) -> None:
        try:
            for i in range(6):
                if i % 3 == 0:
                    price = str(40000 + n * 10 + i)
                    placed.append(spot.add_order("XBTUSD", "buy", "limit", "0.005", price=price).txid[0])
                elif i % 3 == 1:
                    spot.balance()
                else:
                    spot.open_orders()
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            failures.append(exc)

    threads = [threading.Thread(target=worker, args=(n, client if n % 2 else twin)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert len(placed) == 32 and len(open_orders(sim)) == 32


def test_nonces_survive_a_restart_with_the_clock_stepped_back(sim, clock, tmp_path):
    store = tmp_path / "nonces.json"
    first = make_client(sim, clock, nonce_source=NonceSource(FileNonceStore(store)))
    first.balance()
    stepped_back = NonceSource(FileNonceStore(store), clock_ns=lambda: 1_000_000_000)
    assert Decimal(make_client(sim, clock, nonce_source=stepped_back).balance()["ZUSD"]) == 10000
