"""`rules-engine replay RULES --data FILE --sweep SWEEP.yaml`: one replay per combination of
the sweep file's rule parameters, on a local process pool (`--workers N`) or a Dask cluster
(`--dask ADDRESS`, or `--dask local`), ranked by `--rank-by`; sweep.csv, sweep.json and
sweep.md go to `--out`. The replay command calls `run_sweep` once its options are read.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path

from tqdm import tqdm

from rules_engine.core import RiskLimits
from rules_engine.replay.sweep import DEFAULT_METRIC, METRICS, DataSpec, Grid, JobError, ReplaySettings, SweepTable
from rules_engine.replay.sweep_executors import DaskSweep, ProcessPoolSweep, SweepExecutor
from rules_engine.replay.sweep_file import SweepFileError, load_sweep
from rules_engine.replay.sweep_report import write_files, write_json, write_text
from rules_engine.rules.file_guard import read_rule_file
from rules_engine.rules.yaml_source import MAX_FILE_BYTES

LOCAL_DASK = "local"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("sweeps (see docs/rule-tests-and-replay.md)")
    group.add_argument("--sweep", type=Path, metavar="FILE",
                       help="a grid of rule parameters (YAML): one replay per combination, results in "
                            "sweep.csv, sweep.json and sweep.md under --out")
    group.add_argument("--workers", type=int, metavar="N",
                       help="sweep: worker processes (default: the number of CPUs)")
    group.add_argument("--dask", metavar="ADDRESS",
                       help="sweep: run on the Dask scheduler at ADDRESS (tcp://host:8786), or 'local' for a "
                            "LocalCluster of --workers processes (needs pip install 'rules-engine[dask]')")
    group.add_argument("--rank-by", choices=sorted(METRICS), metavar="METRIC",
                       help=f"sweep: the metric that ranks the combinations (default: the sweep file's rank_by, "
                            f"else {DEFAULT_METRIC}): {', '.join(sorted(METRICS))}")


def sweep_usage_problem(args: argparse.Namespace) -> str | None:
    """Options that make sense only with --sweep, or not with it."""
    if args.sweep is None:
        extra = [name for name, value in (("--workers", args.workers), ("--dask", args.dask),
                                          ("--rank-by", args.rank_by)) if value is not None]
        return f"{', '.join(extra)} only apply to --sweep" if extra else None
    if args.state_dir is not None:
        return "--state-dir keeps one replay's state; it does not apply to --sweep"
    if args.workers is not None and args.workers < 1:
        return "--workers must be at least 1"
    if not args.sweep.is_file():
        return f"no such sweep file: {args.sweep}"
    return None


def run_sweep(args: argparse.Namespace, rule_files: list[Path], wallet: Mapping[str, Decimal],
              futures_wallet: Mapping[str, Decimal], limits: RiskLimits | None, balance_max_age: float,
              interval: float | None) -> int:
    try:
        spec = load_sweep(args.sweep)
        sources = []
        for path in rule_files:
            raw = read_rule_file(path, MAX_FILE_BYTES)
            if not isinstance(raw, bytes):
                raise SweepFileError([raw])
            sources.append((path.as_posix(), raw))
        grid = Grid.build(spec, sources)
    except SweepFileError as exc:
        for diagnostic in exc.diagnostics:
            print(diagnostic, file=sys.stderr)
        count = len(exc.diagnostics)
        return _fail(f"the sweep file is invalid ({count} error{'' if count == 1 else 's'})", 1)
    settings = ReplaySettings(
        data=tuple(DataSpec(p.as_posix(), args.data_format, args.pair, interval) for p in args.data),
        wallet=dict(wallet), futures_wallet=dict(futures_wallet), limits=limits, timers=not args.no_timers,
        balance_max_age=balance_max_age)
    jobs = grid.jobs(settings)
    executor: SweepExecutor = (
        DaskSweep(None if args.dask == LOCAL_DASK else args.dask, args.workers) if args.dask
        else ProcessPoolSweep(args.workers))
    show = args.progress if args.progress is not None else sys.stderr.isatty()
    bar = tqdm(total=len(jobs), unit="replay", file=sys.stderr, desc="sweep", leave=False, disable=not show)
    try:
        rows = executor.run(jobs, lambda done: bar.update(done - bar.n))
    except (JobError, RuntimeError) as exc:
        return _fail(str(exc), 1)
    finally:
        bar.close()
    table = SweepTable.of(spec, rows, args.rank_by or spec.rank_by or DEFAULT_METRIC)
    head = {"rules": [p.as_posix() for p in rule_files], "sweep": args.sweep.as_posix(),
            "data": [{"path": d.path, "format": d.data_format, "pair": d.pair, "interval": d.interval}
                     for d in settings.data]}
    try:
        written = write_files(table, args.out, head)
    except OSError as exc:
        return _fail(f"cannot write the sweep report to {args.out}: {exc.strerror or exc}", 2)
    if args.format == "json":
        write_json(table, sys.stdout, head)
    else:
        write_text(table, sys.stdout, [p.as_posix() for p in written])
    return 0


def _fail(message: str, code: int) -> int:
    print(f"rules-engine replay: {message}", file=sys.stderr)
    return code
