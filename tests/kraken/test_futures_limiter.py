"""The client-side Futures budget: 500 cost units per 10 s, as Kraken documents; the client
waits instead of being refused with apiLimitExceeded."""

from kraken_rest_fakes import FakeClock

from rules_engine.kraken.futures_limiter import FuturesRateLimiter, futures_cost


def test_costs_follow_krakens_table():
    assert futures_cost("sendorder") == futures_cost("cancelorder") == futures_cost("editorder") == 10
    assert futures_cost("cancelallorders") == futures_cost("cancelallordersafter") == 25
    assert futures_cost("accounts") == futures_cost("openorders") == futures_cost("fills") == 2
    assert futures_cost("fills", {"lastFillTime": "2024-01-01T00:00:00Z"}) == 25
    assert futures_cost("orders/status") == 1
    assert futures_cost("batchorder", {"batchOrder": [1, 2, 3]}) == 12


def test_the_fifty_first_order_in_ten_seconds_waits():
    clock = FakeClock()
    limiter = FuturesRateLimiter(clock=clock, sleep=clock.sleep)
    for _ in range(50):
        limiter.acquire("sendorder")
    assert limiter.waited == 0 and limiter.used() == 500
    limiter.acquire("sendorder")
    assert 0.2 <= limiter.waited < 0.25, "10 units drain in 0.2 s"


def test_a_refusal_spends_the_whole_budget():
    clock = FakeClock()
    limiter = FuturesRateLimiter(clock=clock, sleep=clock.sleep)
    limiter.note_rate_limited()
    limiter.acquire("accounts")
    assert limiter.waited >= 0.04 and limiter.used() <= 500
