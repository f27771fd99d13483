import pytest
from kraken_rest_fakes import FakeClock

SLACK = 0.01  # the limiter sleeps this much past the exact moment a call fits


def waited(seconds):
    return pytest.approx(seconds + SLACK)

from rules_engine.kraken.limiter import RateLimiter


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def limiter(clock):
    return RateLimiter("starter", clock=clock, sleep=clock.sleep)


def test_rest_counter_waits_for_decay_before_the_call_that_would_exceed(limiter, clock):
    for _ in range(15):
        assert limiter.acquire("Balance") == 0
    assert limiter.acquire("Balance") == waited(1 / 0.33)
    assert clock.sleeps == [waited(1 / 0.33)]
    assert limiter.rest_value() == pytest.approx(15 - SLACK * 0.33)


def test_two_point_calls_and_free_trading_calls(limiter):
    limiter.acquire("Ledgers")
    limiter.acquire("AddOrder")
    limiter.acquire("CancelOrder")
    assert limiter.rest_value() == 2


def test_trading_counter_is_per_pair(limiter, clock):
    for _ in range(60):
        limiter.acquire("AddOrder", pair="XBTUSD")
    assert limiter.acquire("AddOrder", pair="ETHUSD") == 0
    assert limiter.acquire("AddOrder", pair="XBTUSD") == waited(1.0)


def test_cancel_costs_by_order_age(limiter, clock):
    limiter.record_order(["O1", "cl-1"], "XBTUSD")
    clock.now += 3
    limiter.acquire("CancelOrder", order_id="O1")
    assert limiter.trading_value("XBTUSD") == pytest.approx(8 - 0)
    limiter.record_order(["O2"], "XBTUSD")
    clock.now += 20
    before = limiter.trading_value("XBTUSD")
    limiter.acquire("CancelOrder", order_id="O2")
    assert limiter.trading_value("XBTUSD") == pytest.approx(before + 4)
    limiter.acquire("CancelOrder", order_id="unknown")  # never seen: no charge
    assert limiter.trading_value("XBTUSD") == pytest.approx(before + 4)


def test_cancel_waits_when_the_penalty_does_not_fit(limiter, clock):
    for _ in range(55):
        limiter.acquire("AddOrder", pair="XBTUSD")
    limiter.record_order(["O1"], "XBTUSD")
    assert limiter.acquire("CancelOrder", order_id="O1") == waited(3.0)  # 55 + 8 > 60 at 1/s decay


def test_cancel_all_charges_each_tracked_order_once_and_never_waits(limiter, clock):
    for _ in range(58):
        limiter.acquire("AddOrder", pair="XBTUSD")
    limiter.record_order(["O1", "cl-1"], "XBTUSD")
    limiter.record_order(["O2"], "ETHUSD")
    limiter.record_cancel_all()
    assert clock.sleeps == []
    assert limiter.trading_value("XBTUSD") == pytest.approx(66)
    assert limiter.trading_value("ETHUSD") == pytest.approx(8)


def test_a_refusal_from_kraken_fills_the_counter_and_counts_the_refused_call(limiter, clock):
    limiter.acquire("Balance")
    limiter.note_rate_limited(method="Balance")  # full, plus the refused call: 16
    assert limiter.acquire("Balance") == waited(2 / 0.33)
    limiter.note_rate_limited("XBTUSD", "AddOrder")
    assert limiter.acquire("AddOrder", pair="XBTUSD") == waited(2.0)


def test_refusals_in_a_row_wait_longer_each_time(limiter, clock):
    waits = []
    for _ in range(3):
        limiter.note_rate_limited(method="ClosedOrders")  # costs 2
        waits.append(limiter.wait_for_room("ClosedOrders"))
        limiter.acquire("ClosedOrders")
    assert waits[0] < waits[1] < waits[2]
    limiter.note_answered()  # an answer ends the streak: the next refusal counts the cost once again
    limiter.note_rate_limited(method="ClosedOrders")
    assert limiter.wait_for_room("ClosedOrders") == pytest.approx(waits[0], abs=0.1)


def test_a_client_whose_exchange_counter_starts_above_its_own_gets_through():
    """Kraken's counter starts over the limit (an earlier process used the key) and counts
    refused calls too. A client that waited only for room for one call would come back as
    fast as the counter decays and be refused forever; this one gets through."""
    from rules_engine.kraken.ratelimit import TIERS, DecayingCounter, rest_cost

    clock = FakeClock()
    limiter = RateLimiter("starter", clock=clock, sleep=clock.sleep)
    tier = TIERS["starter"]
    kraken = DecayingCounter(tier.rest_max, tier.rest_decay)
    kraken.force_add(tier.rest_max + 6, clock())  # 21 of 15 when this client starts
    refused = 0
    for attempt in range(50):
        limiter.wait_for_room("ClosedOrders")
        limiter.acquire("ClosedOrders")
        cost = rest_cost("ClosedOrders")
        if kraken.add(cost, clock()):
            break
        kraken.force_add(cost, clock())
        refused += 1
        limiter.note_rate_limited(method="ClosedOrders")
        clock.sleep(3.0)  # the retry policy's own backoff
    else:
        raise AssertionError("never got through")
    assert 1 <= refused <= 5


def test_waiting_for_room_counts_nothing(limiter, clock):
    for _ in range(15):
        limiter.acquire("Balance")
    assert limiter.wait_for_room("Balance") == waited(1 / 0.33)
    assert limiter.rest_value() == pytest.approx(14 - SLACK * 0.33)
    assert limiter.acquire("Balance") == 0


def test_headroom_leaves_room_for_calls_made_elsewhere(clock):
    limiter = RateLimiter("pro", clock=clock, sleep=clock.sleep, headroom=5)
    for _ in range(15):
        limiter.acquire("Balance")
    assert limiter.acquire("Balance") == waited(1.0)
