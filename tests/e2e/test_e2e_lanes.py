"""Order sending runs one lane per pair: an order held up on one pair (a slow answer, an
ambiguous failure waiting for its deadline) does not delay an order on another pair, and
each lane keeps its own orders in decision order."""

from __future__ import annotations

import asyncio
import threading
import time

from e2e_harness import E2E, post, signed, wait_for
from rules_engine.service.lane import ENGINE_LANE, ThreadLane, lane_of
from rules_engine.driver import Job
from rules_engine.core import intents as it

RULES = """
- id: a
  triggers: [{type: signal, source: mybot, where: "signal.pair == 'XBTUSD'"}]
  actions: [{type: place_order, pair: XBTUSD, side: buy, ordertype: limit, volume: 0.01, price: 60000}]
- id: b
  triggers: [{type: signal, source: mybot, where: "signal.pair == 'ETHUSD'"}]
  actions: [{type: place_order, pair: ETHUSD, side: buy, ordertype: limit, volume: 0.1, price: 2000}]
"""


def placed(seen, pair: str) -> list:
    return [r for i, r in seen.reports if isinstance(i, it.PlaceOrder) and i.pair == pair]


async def test_a_slow_order_on_one_pair_does_not_delay_an_order_on_another(e2e: E2E) -> None:
    e2e.write_rules(RULES)
    async with e2e.running(cli_live=True, mode="live", dead_man_switch={"enabled": False},
                           wait_feeds=False) as (service, seen, url):
        e2e.sim.faults.delay("AddOrder", 4.0, count=1)  # the first order's answer takes 4 s
        body, headers = signed({"pair": "XBTUSD"}, signal_id="slow")
        assert (await post(url + "/signals/mybot", body, headers))[0] == 202
        await wait_for(lambda: [r for r in e2e.audit_records("decision") if r["rule_id"] == "a"
                                and "cl_ord_id" in r["data"]])  # the order is on its way
        await asyncio.sleep(0.2)
        start = time.monotonic()
        body, headers = signed({"pair": "ETHUSD"}, signal_id="fast")
        assert (await post(url + "/signals/mybot", body, headers))[0] == 202
        await wait_for(lambda: placed(seen, "ETHUSD"), timeout=10)
        elapsed = time.monotonic() - start
        assert placed(seen, "XBTUSD") == []  # the slow one is still on its way
        assert elapsed < 2.5, f"the ETHUSD order waited {elapsed:.1f} s behind the slow XBTUSD one"
        await wait_for(lambda: placed(seen, "XBTUSD"), timeout=10)
        assert all(r.result.ok for r in placed(seen, "XBTUSD") + placed(seen, "ETHUSD"))
    ids = [o.cl_ord_id for o in e2e.spot_orders() if o.account == e2e.account.api_key]
    assert len(ids) == 2 == len(set(ids))


def test_jobs_go_to_the_lane_of_their_pair() -> None:
    order = it.PlaceOrder(intent_id="a#1/0", rule_id="a", decision_id="a#1", pair="XBTUSD", side="buy",
                          ordertype="limit", volume=1, cl_ord_id="x")
    assert lane_of(Job((order,))) == "spot:XBTUSD"
    assert lane_of(Job(())) == ENGINE_LANE
    assert lane_of(Job((it.CancelAll(intent_id="k", rule_id=None, decision_id=None),))) == ENGINE_LANE


class _SlowLane:
    """A stand-in CommitLane: the XBTUSD job blocks until released; records the run order."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.order: list[str] = []

    def run(self, job: Job) -> list:
        name = lane_of(job)
        if name == "spot:XBTUSD":
            self.release.wait(5)
        self.order.append(name if job.intents[0].kind != "cancel_all" else "cancel_all")
        return []


async def test_a_cancel_waits_for_the_orders_decided_before_it_but_other_pairs_do_not() -> None:
    slow = _SlowLane()
    lanes = ThreadLane(slow, asyncio.get_running_loop(), lambda i, r: None, lambda: None, concurrent=True)

    def place(pair: str, n: int) -> Job:
        return Job((it.PlaceOrder(intent_id=f"r#{n}/0", rule_id="r", decision_id=f"r#{n}", pair=pair, side="buy",
                                  ordertype="limit", volume=1, cl_ord_id=f"c{n}"),))

    lanes.submit(place("XBTUSD", 1))
    lanes.submit(Job((it.CancelAll(intent_id="k", rule_id=None, decision_id=None),)))
    lanes.submit(place("ETHUSD", 2))
    await wait_for(lambda: slow.order == ["spot:ETHUSD"])  # the other pair went ahead; the cancel waits
    slow.release.set()
    await wait_for(lambda: len(slow.order) == 3)
    assert slow.order == ["spot:ETHUSD", "spot:XBTUSD", "cancel_all"]
    await lanes.shutdown()
