"""Where a sweep's replays run: the executor interface and its two implementations.

- `ProcessPoolSweep(workers)`: local processes (`concurrent.futures`), the default; one
  worker runs the jobs in this process.
- `DaskSweep(address=None, workers)`: a Dask cluster (`pip install 'rules-engine[dask]'`):
  the scheduler at `address` (`tcp://host:8786`), or a `LocalCluster` of `workers`
  processes on this machine. Workers of a real cluster need rules-engine installed and the
  data files at the same paths.

Both return the rows in job order, so the table does not depend on which finished first.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Protocol

from rules_engine.replay.sweep import Job, run_job

Row = dict[str, Any]
Progress = Callable[[int], None]  # told each time a job finishes (the number finished so far)


class SweepExecutor(Protocol):
    """Runs `run_job` over jobs and returns the rows in job order."""

    def run(self, jobs: Sequence[Job], progress: Progress | None = None) -> list[Row]: ...


class ProcessPoolSweep:
    def __init__(self, workers: int | None = None):
        self.workers = max(1, workers or os.cpu_count() or 1)

    def run(self, jobs: Sequence[Job], progress: Progress | None = None) -> list[Row]:
        if self.workers == 1 or len(jobs) <= 1:
            rows = []
            for job in jobs:
                rows.append(run_job(job))
                if progress:
                    progress(len(rows))
            return rows
        with ProcessPoolExecutor(max_workers=min(self.workers, len(jobs))) as pool:
            return _collect([pool.submit(run_job, job) for job in jobs], progress)


class DaskSweep:
    def __init__(self, address: str | None = None, workers: int | None = None):
        self.address = address
        self.workers = max(1, workers or os.cpu_count() or 1)

    def run(self, jobs: Sequence[Job], progress: Progress | None = None) -> list[Row]:
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise RuntimeError("Dask is not installed: pip install 'rules-engine[dask]'") from None
        if self.address:
            with Client(self.address) as client:
                return self._gather(client, jobs, progress)
        with LocalCluster(n_workers=min(self.workers, max(1, len(jobs))), threads_per_worker=1, processes=True,
                          host="127.0.0.1", dashboard_address=None) as cluster, Client(cluster) as client:
            return self._gather(client, jobs, progress)

    @staticmethod
    def _gather(client: Any, jobs: Sequence[Job], progress: Progress | None) -> list[Row]:
        return _collect(client.map(run_job, list(jobs), pure=False), progress)


def _collect(futures: Sequence[Any], progress: Progress | None) -> list[Row]:
    """The futures' rows in job order, telling `progress` how many are done."""
    rows = []
    for done, future in enumerate(futures, start=1):
        rows.append(future.result())
        if progress:
            progress(done)
    return rows
