"""`cpu: N` in the engine config pins the whole engine process to CPU N (docs/modes-and-execution.md,
"Pinning the engine to one CPU"): every thread, the dispatch lanes started later included; a CPU the process may
not use stops the start and pins nothing."""

from __future__ import annotations

import os
import threading

import pytest
from e2e_harness import E2E, FAST_FEED, move, wait_for

from rules_engine.config import ConfigError, parse_config
from rules_engine.service.affinity import set_process_affinity
from rules_engine.service.app import EngineService
from rules_engine.service.startup import StartupError

RULE = """
    - id: buyer
      triggers: [{type: price, symbol: XBTUSD, crosses_above: 70000}]
      actions: [{type: place_order, pair: XBTUSD, side: buy, ordertype: limit, volume: 0.01, price: 60000}]
"""


@pytest.fixture
def allowed():
    """The CPUs this test process may use, given back to every thread afterwards."""
    before = os.sched_getaffinity(0)
    yield before
    set_process_affinity(before)


def service_for(e2e: E2E, **config: object) -> EngineService:
    data = e2e.config_data(mode="live", dead_man_switch={"enabled": False}, **config)
    return EngineService(parse_config(data), [e2e.rules_dir], cli_live=True, state_dir=e2e.state_dir,
                         environ=e2e.environ, reload_interval=None, feed_options=FAST_FEED)


def affinities() -> dict[int, set[int]]:
    return {int(tid): os.sched_getaffinity(int(tid)) for tid in os.listdir(f"/proc/{os.getpid()}/task")}


async def test_every_thread_of_the_engine_runs_on_the_configured_cpu(e2e: E2E, allowed: set[int]) -> None:
    cpu = max(allowed)
    e2e.write_rules(RULE)
    service = service_for(e2e, cpu=cpu)
    await service.start()
    try:
        await wait_for(lambda: service.health()["feeds"].get("spot", {}).get("subscribed"))
        await move(e2e, service, "XBTUSD", "69900", "70100")
        await service.settle(10)
        assert [e.method for e in e2e.sim.journal.entries(e2e.account.api_key) if e.method == "AddOrder"] == ["AddOrder"]
        lane = next(t for t in threading.enumerate() if t.name == "rules-engine-dispatch-spot:XBTUSD")
        assert os.sched_getaffinity(lane.native_id) == {cpu}  # started after the pinning: inherited it
        assert set(map(frozenset, affinities().values())) == {frozenset({cpu})}
    finally:
        await service.stop()


async def test_a_cpu_the_process_may_not_use_stops_the_start_and_pins_nothing(e2e: E2E, allowed: set[int]) -> None:
    e2e.write_rules(RULE)
    unavailable = max(allowed) + 1
    with pytest.raises(StartupError, match=f"CPU {unavailable} is not available to this process"):
        await service_for(e2e, cpu=unavailable).start()
    assert set(map(frozenset, affinities().values())) == {frozenset(allowed)}


def test_the_config_takes_a_cpu_number_only() -> None:
    assert parse_config({"cpu": 3}).cpu == 3
    assert parse_config({}).cpu is None
    for bad in (-1, "1", 1.5, True):
        with pytest.raises(ConfigError, match="cpu"):
            parse_config({"cpu": bad})
