"""The garbage collector in a running engine: what it loaded stays out of its collections.

CPython's cyclic collector runs when allocations pile up, on whichever thread allocates, so
on an order's way as likely as anywhere. How long a run takes grows with the objects it
looks at: with an engine's modules, rules and pairs tracked (about 130,000 objects), a
generation-1 run took 3-4 ms in the tick-to-order bench (about one per 100 orders) and a
full one 46 ms. After the start, and after each rules reload, the engine collects once and
moves every object alive then to the collector's permanent generation (`gc.freeze`): later
runs look at newer objects only. A reload first lets the frozen objects go again
(`gc.unfreeze`), so a replaced rule set is collected, not kept for good; `stop` too.
"""

from __future__ import annotations

import gc


def freeze_loaded() -> None:
    """Collect, then keep every object alive now out of later collections."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def release_loaded() -> None:
    """Let the objects `freeze_loaded` set aside be collected again (the engine stops)."""
    gc.unfreeze()
