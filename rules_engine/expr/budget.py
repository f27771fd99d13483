"""Wall-clock budgets: one per evaluation (checked by the evaluator after every operator and
call) and one per rule file being loaded (checked as each expression is compiled).

Every single operation of the language is bounded by the size limits (`limits`), so checking
between operations bounds the whole: an evaluation ends at most one operation after its
budget runs out. The budgets are backstops, far above what any real expression takes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

EVALUATION_BUDGET = 1.0
"""Seconds one evaluation may take (real guards take microseconds)."""

FILE_LOAD_BUDGET = 10.0
"""Seconds loading one rule file may take (a 1 MB file of rules loads in about a second)."""

clock: Callable[[], float] = time.perf_counter
"""The clock both budgets read (tests replace it)."""


class LoadBudgetExceeded(Exception):
    """Loading one rule file took longer than FILE_LOAD_BUDGET."""


_local = threading.local()


@contextmanager
def file_load_budget(seconds: float = FILE_LOAD_BUDGET) -> Iterator[None]:
    """Bound the loading of one file on this thread; `check_file_load_budget` raises when over."""
    saved = getattr(_local, "deadline", None), getattr(_local, "budget", None)
    _local.deadline, _local.budget = clock() + seconds, seconds
    try:
        yield
    finally:
        _local.deadline, _local.budget = saved


def check_file_load_budget() -> None:
    """Raise LoadBudgetExceeded when the file being loaded on this thread is over its budget."""
    deadline = getattr(_local, "deadline", None)
    if deadline is not None and clock() > deadline:
        raise LoadBudgetExceeded(f"loading this file took longer than {_local.budget:g} s")
