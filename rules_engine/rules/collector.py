"""Pause Python's cyclic garbage collector while rule files load.

Loading a large rule file makes hundreds of thousands of small objects (YAML nodes, the
position index, compiled expressions) and no reference cycles worth collecting. Left on, the
collector runs full collections over all of them; each one holds the interpreter lock for up
to half a second, which stalls every other thread, the service's event loop included (its
HTTP server, the kill switch), even though the load itself runs on a worker thread. Paused,
a 1 MB file loads with the loop answering within tens of milliseconds. Objects freed by
reference counting are freed as usual; the collector resumes when the last load ends.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_loads = 0
_was_enabled = False


@contextmanager
def collector_paused() -> Iterator[None]:
    """Run the body with the cyclic collector off (re-entrant and thread-safe)."""
    global _loads, _was_enabled
    with _lock:
        if _loads == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _loads += 1
    try:
        yield
    finally:
        with _lock:
            _loads -= 1
            if _loads == 0 and _was_enabled:
                gc.enable()
