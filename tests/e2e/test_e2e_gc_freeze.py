"""`rules-engine run` keeps what the engine loaded out of the garbage collector's runs
(`service.gc_tuning`): after the start and after each reload everything alive is frozen, a
reload lets the previous rules go, and a stop unfreezes. An engine that does not own its
process (a worker's cells, `freeze_gc=False`) leaves the collector alone."""

from __future__ import annotations

import gc
import weakref

from e2e_harness import E2E

RULES = """
- id: up
  triggers: [{type: price, symbol: XBTUSD, crosses_above: 70000}]
  actions: [{type: log, message: "up {price}"}]
"""


def _collected(obj: object) -> bool:
    """Whether the collector's generations hold `obj` (frozen objects are in none of them)."""
    return any(o is obj for o in gc.get_objects())


class _Cycle:
    """An object that only the cyclic collector can free (it refers to itself)."""

    def __init__(self) -> None:
        self.itself = self


async def test_the_loaded_rules_are_frozen_after_start_and_reload_and_released_at_stop(e2e: E2E) -> None:
    e2e.write_rules(RULES)
    service = e2e.service()
    service.freeze_gc = True
    loaded = _Cycle()  # alive at the start, so frozen with the rules; garbage soon after
    gone = weakref.ref(loaded)
    await service.start()
    try:
        assert service.engine is not None
        assert gc.get_freeze_count() > 0 and not _collected(service.engine.ruleset)
        del loaded
        gc.collect()
        assert gone() is not None  # frozen: out of the collector's reach
        e2e.write_rules(RULES.replace("70000", "71000"))
        assert await service.reload("test")
        second = service.engine.ruleset
        assert second.rules[0].triggers[0].level == 71000 and not _collected(second)
        assert gone() is None  # the reload let what was frozen go before freezing again: no leak
    finally:
        await service.stop()
    assert gc.get_freeze_count() == 0


async def test_an_engine_that_does_not_own_its_process_leaves_the_collector_alone(e2e: E2E) -> None:
    e2e.write_rules(RULES)
    async with e2e.running() as (service, _, _):
        assert gc.get_freeze_count() == 0 and _collected(service.engine.ruleset)
