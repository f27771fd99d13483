"""`EAPI:Invalid nonce`: a read is repeated once with a fresh nonce; an AddOrder is looked up
by its cl_ord_id first and sent again only if absent; repeated refusals mean another client
uses the key (`KeyInUse`, in `key_problems()`); a lease keeps two engines on one machine
from sharing a key."""

import secrets

import pytest
from kraken_rest_fakes import SECRET, FakeClock

from rules_engine.kraken import errors as E
from rules_engine.kraken.credentials import Credentials
from rules_engine.kraken.key_use import KeyInUseHere, KeyLease, forget_conflicts, key_problems
from rules_engine.kraken.nonce import NonceSource
from rules_engine.kraken.futures_rest import FuturesClient
from rules_engine.kraken.spot_rest import SpotClient
from rules_engine.sim.config import Account, SimConfig
from rules_engine.sim.server import Simulator


@pytest.fixture
def key():
    name = "nonce-" + secrets.token_hex(4)  # each test its own key: refusals are counted per key
    yield name
    forget_conflicts(Credentials(name, SECRET).fingerprint)  # not a problem of later tests' engines


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def sim(key, clock):
    config = SimConfig(accounts=[Account(key, SECRET, {"ZUSD": "10000", "XXBT": "1"})], prices={"XBTUSD": "60000"},
                       seed=1, tick_interval=0)
    simulator = Simulator(config, clock=clock)
    with simulator.running() as endpoints:
        simulator.test_endpoints = endpoints
        yield simulator


def client(sim, key, clock, nonces=None):
    return SpotClient(Credentials(key, SECRET), sim.test_endpoints, clock=clock, sleep=clock.sleep,
                      nonce_source=nonces or NonceSource(), timeout=(2.0, 2.0))


def order(cl_ord_id):
    return {"pair": "XBTUSD", "type": "buy", "ordertype": "limit", "volume": "0.01", "price": "50000",
            "cl_ord_id": cl_ord_id}


def test_a_read_refused_for_its_nonce_is_repeated_once_with_a_fresh_one(sim, key, clock):
    sim.faults.fail_next("Balance", "EAPI:Invalid nonce")
    with client(sim, key, clock) as spot:
        assert spot.balance()["ZUSD"] == "10000.0000"
        sim.faults.fail_next("Balance", "EAPI:Invalid nonce", count=2)
        with pytest.raises(E.NonceError):
            spot.balance()  # refused again: not repeated a second time


def test_an_order_refused_for_its_nonce_is_sent_again_only_once_proven_absent(sim, key, clock):
    sim.faults.fail_next("AddOrder", "EAPI:Invalid nonce")
    with client(sim, key, clock) as spot:
        placed = spot.add_order("XBTUSD", "buy", "limit", "0.01", price="50000", cl_ord_id="absent-1")
    assert not placed.recovered and placed.txid
    assert [o.cl_ord_id for o in sim.exchange.open_orders(key)] == ["absent-1"]


def test_an_order_found_after_a_nonce_refusal_is_not_sent_again(sim, key, clock):
    with client(sim, key, clock) as spot:
        spot.add_order("XBTUSD", "buy", "limit", "0.01", price="50000", cl_ord_id="present-1")
        sim.faults.fail_next("AddOrder", "EAPI:Invalid nonce")
        placed = spot.add_order("XBTUSD", "buy", "limit", "0.01", price="50000", cl_ord_id="present-1")
    assert placed.recovered
    assert [o.cl_ord_id for o in sim.exchange.open_orders(key)] == ["present-1"]


def test_another_client_on_the_key_is_named_after_repeated_refusals(sim, key, clock):
    ahead = NonceSource(clock_ns=lambda: 10**19)  # another client whose nonces are far above ours
    with client(sim, key, clock) as mine, client(sim, key, clock, ahead) as other:
        other.balance()
        with pytest.raises(E.NonceError) as first:
            mine.balance()  # refused, repeated once, refused again
        assert not isinstance(first.value, E.KeyInUse)
        with pytest.raises(E.KeyInUse, match="another client is using API key"):
            mine.balance()
        with pytest.raises(E.KeyInUse):
            mine.add_order("XBTUSD", "buy", "limit", "0.01", price="50000", cl_ord_id="never")
    assert any("another client is using API key" in p and Credentials(key, SECRET).fingerprint in p
               for p in key_problems())
    assert sim.exchange.open_orders(key) == []


def test_a_key_lease_keeps_a_second_engine_on_this_machine_off_the_key(tmp_path):
    env = {"RULES_ENGINE_RUNTIME_DIR": str(tmp_path / "run")}
    lease = KeyLease("abc123", "pid 1, state dir /a", env)
    with pytest.raises(KeyInUseHere, match=r"another rules-engine on this machine .* \(pid 1, state dir /a\)"):
        KeyLease("abc123", "pid 2, state dir /b", env)
    KeyLease("def456", "pid 2", env).release()  # another key is free
    lease.release()
    KeyLease("abc123", "pid 2, state dir /b", env).release()


def test_a_futures_read_refused_for_its_nonce_is_repeated_once(sim, key, clock):
    sim.faults.fail_next("accounts", "nonceBelowThreshold")
    with FuturesClient(Credentials(key, SECRET), sim.test_endpoints, clock=clock, sleep=clock.sleep,
                       nonce_source=NonceSource(unit_ns=1_000_000), timeout=(2.0, 2.0)) as futures:
        assert "flex" in futures.accounts()  # refused once, repeated with a fresh nonce
