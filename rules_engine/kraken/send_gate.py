"""A gate a signed request passes right before it leaves: the order's audit record is on disk.

The dispatcher writes an order's `decision` record and starts its fsync, then runs the
executor inside `gated(wait)`; `RestClient._signed` calls `pass_gate()` after the request is
signed, right before it is handed to the transport, so the nonce and the signature are
worked out while the disk works and nothing leaves before the record is durable. The gate
is set per thread (a context variable): a request leaves on the thread that signed it.
`wait` is called at most once per gate; raising from it stops the request, unsent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_GATE: ContextVar[Callable[[], None] | None] = ContextVar("send_gate", default=None)


@contextmanager
def gated(wait: Callable[[], None]) -> Iterator[None]:
    """Requests signed in this block (on this thread) call `wait` before the first leaves."""
    token = _GATE.set(wait)
    try:
        yield
    finally:
        _GATE.reset(token)


def pass_gate() -> None:
    """Wait at the gate, if one is set (see the module docstring)."""
    wait = _GATE.get()
    if wait is not None:
        wait()
