"""What a fenced failover needs from the simulator: the per-key nonce window (0: strictly
increasing), `cl_ord_id` unique among a key's open orders, AddOrder `deadline`, and the
journal of (key, nonce, method, cl_ord_id, accepted/rejected) tests check histories against."""

from datetime import UTC, datetime

import pytest
import requests
from sim_support import KEY, OTHER_KEY, OTHER_SECRET, SECRET, SpotClient, make_sim

from rules_engine.sim import Account, SimConfig
from rules_engine.sim.config import config_from_mapping
from rules_engine.sim.nonces import KeyNonces

LIMIT = {"pair": "XBTUSD", "type": "buy", "ordertype": "limit", "volume": "0.01", "price": "50000"}
WINDOWED = "sim-windowed-key"


def _deadline(clock, seconds: float) -> str:
    return datetime.fromtimestamp(clock.now + seconds, UTC).isoformat().replace("+00:00", "Z")


def test_window_zero_accepts_only_nonces_above_the_last_accepted():
    nonces = KeyNonces()
    assert [nonces.accept(n) for n in (10, 10, 9, 11, 5, 12)] == [True, False, False, True, False, True]


def test_a_window_accepts_unused_nonces_within_it_below_the_highest():
    nonces = KeyNonces(window=5)
    assert nonces.accept(100)
    assert nonces.accept(97)            # late, within the window
    assert not nonces.accept(97)        # never twice
    assert not nonces.accept(100)
    assert nonces.accept(95)            # the window's edge
    assert not nonces.accept(94)        # below it
    assert nonces.accept(110)
    assert not nonces.accept(104)       # the window moved up with the highest


def test_nonce_window_is_a_per_key_setting_over_http(clock):
    sim = make_sim(clock, accounts=[Account(KEY, SECRET, {"ZUSD": "100"}),
                                    Account(WINDOWED, OTHER_SECRET, {"ZUSD": "100"}, nonce_window=1000)])
    with sim.running() as endpoints:
        strict, windowed = SpotClient(endpoints.spot_rest), SpotClient(endpoints.spot_rest, WINDOWED, OTHER_SECRET)
        for client in (strict, windowed):
            assert client.private("Balance", nonce="5000000")["error"] == []
        assert strict.private("Balance", nonce="4999500") == {"error": ["EAPI:Invalid nonce"]}
        assert windowed.private("Balance", nonce="4999500")["error"] == []
        assert windowed.private("Balance", nonce="4999500") == {"error": ["EAPI:Invalid nonce"]}
        assert windowed.private("Balance", nonce="4998999") == {"error": ["EAPI:Invalid nonce"]}
    assert sim.spot_auth.last_nonce(WINDOWED) == 5000000


def test_nonce_window_in_the_config_file_is_checked():
    config = config_from_mapping({"accounts": [{"api_key": "a", "secret": SECRET, "nonce_window": 10000}]})
    assert config.accounts[0].nonce_window == 10000
    assert SimConfig(accounts=[Account("b", SECRET)]).accounts[0].nonce_window == 0
    with pytest.raises(ValueError, match="nonce_window must be a whole number >= 0"):
        config_from_mapping({"accounts": [{"api_key": "a", "secret": SECRET, "nonce_window": -1}]})


def test_journal_records_each_private_call_with_its_outcome(sim, spot, clock):
    first = spot.ok("AddOrder", {**LIMIT, "cl_ord_id": "rule-a-1", "deadline": _deadline(clock, 5)}, nonce="100")
    assert spot.private("AddOrder", {**LIMIT, "cl_ord_id": "rule-a-1"}, nonce="101") == \
        {"error": ["EOrder:Duplicate order"]}
    assert spot.private("AddOrder", {**LIMIT, "cl_ord_id": "rule-a-2"}, nonce="101") == \
        {"error": ["EAPI:Invalid nonce"]}
    assert spot.private("AddOrder", {**LIMIT, "cl_ord_id": "rule-a-3", "deadline": _deadline(clock, -1)},
                        nonce="102") == {"error": ["EService:Deadline elapsed"]}
    spot.ok("CancelOrder", {"cl_ord_id": "rule-a-1"}, nonce="103")
    again = spot.ok("AddOrder", {**LIMIT, "cl_ord_id": "rule-a-1"}, nonce="104")  # no longer open: allowed

    rows = [(e.key, e.nonce, e.method, e.cl_ord_id, e.accepted, e.error) for e in sim.journal.entries()]
    assert rows == [
        (KEY, "100", "AddOrder", "rule-a-1", True, None),
        (KEY, "101", "AddOrder", "rule-a-1", False, "EOrder:Duplicate order"),
        (KEY, "101", "AddOrder", "rule-a-2", False, "EAPI:Invalid nonce"),
        (KEY, "102", "AddOrder", "rule-a-3", False, "EService:Deadline elapsed"),
        (KEY, "103", "CancelOrder", "rule-a-1", True, None),
        (KEY, "104", "AddOrder", "rule-a-1", True, None),
    ]
    entries = sim.journal.entries()
    assert [e.txid for e in entries if e.method == "AddOrder" and e.accepted] == first["txid"] + again["txid"]
    assert [e.seq for e in entries] == sorted(e.seq for e in entries)
    assert all(e.time == clock.now for e in entries)


def test_journal_tells_keys_apart_and_serves_over_the_admin_path(sim, spot, endpoints):
    other = SpotClient(endpoints.spot_rest, OTHER_KEY, OTHER_SECRET)
    spot.ok("Balance", nonce="7")
    other.ok("Balance", nonce="7")
    assert spot.private("Balance", headers={"API-Key": "nobody"}) == {"error": ["EAPI:Invalid key"]}
    assert [(e.key, e.accepted) for e in sim.journal.entries(key=OTHER_KEY)] == [(OTHER_KEY, True)]

    served = requests.get(endpoints.spot_rest + "/_sim/journal", timeout=5).json()
    assert [(e["key"], e["nonce"], e["accepted"], e["error"]) for e in served["entries"]] == [
        (KEY, "7", True, None), (OTHER_KEY, "7", True, None), ("nobody", served["entries"][2]["nonce"], False,
                                                               "EAPI:Invalid key")]
    assert served["last"] == served["entries"][-1]["seq"]
    later = requests.get(endpoints.spot_rest + "/_sim/journal",
                         params={"key": KEY, "since": served["entries"][0]["seq"]}, timeout=5).json()
    assert later == {"entries": [], "last": served["entries"][0]["seq"]}
    bad = requests.get(endpoints.spot_rest + "/_sim/journal", params={"since": "x"}, timeout=5)
    assert bad.status_code == 400


def test_journal_counts_a_withheld_answer_as_accepted_and_a_refused_request_as_rejected(sim, spot):
    sim.faults.timeout_after_accept("AddOrder", delay=0.05)
    with pytest.raises(requests.RequestException):
        spot.raw("AddOrder", {**LIMIT, "cl_ord_id": "lost-answer"}, nonce="200")
    sim.faults.http_status("AddOrder", 503)
    assert spot.raw("AddOrder", {**LIMIT, "cl_ord_id": "never-there"}, nonce="201").status_code == 503
    rows = [(e.nonce, e.cl_ord_id, e.accepted, e.error, e.txid is not None) for e in sim.journal.entries()]
    assert rows == [("200", "lost-answer", True, None, False), ("201", "never-there", False, "HTTP 503", False)]
    with sim.lock:
        assert [o.cl_ord_id for o in sim.exchange.open_orders(KEY)] == ["lost-answer"]


def test_a_client_that_goes_away_mid_body_reaches_nothing_and_logs_no_error(sim, spot, endpoints, caplog):
    """A process killed while sending (the crash suites do it): the request never reaches the
    exchange, the journal has no entry and the simulator logs no traceback."""
    import logging
    import socket
    import time
    from urllib.parse import urlsplit

    url = urlsplit(endpoints.spot_rest)
    with caplog.at_level(logging.ERROR):
        with socket.create_connection((url.hostname, url.port)) as conn:
            conn.sendall(b"POST /0/private/AddOrder HTTP/1.1\r\nHost: x\r\nAPI-Key: " + KEY.encode()
                         + b"\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 500\r\n\r\n"
                         + b"nonce=1&pair=XBTUSD")
        deadline = time.monotonic() + 5
        spot.ok("Balance", nonce="2")  # the simulator still serves
        while time.monotonic() < deadline and not sim.journal.entries():
            time.sleep(0.01)
    assert [e.method for e in sim.journal.entries()] == ["Balance"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], [r.getMessage() for r in caplog.records]
