"""Guard evaluation cost: compiled once at load versus asteval's `eval` of the source text
on every call.

- compiled: `compile_expression(source, names)` once, then `Expression.evaluate(env)`;
- asteval:  one `asteval.Interpreter(minimal=True, use_numpy=False)` holding the runtime
  functions, then per call the context values copied into its symbol table and
  `Interpreter.eval(source)` (which parses the text every time).

Both evaluate the same guards on the same Decimal values and must agree. Each figure is
the best of several alternating rounds, in microseconds per guard evaluation. Target: compiled is at
least 4x cheaper.

Run: `python -m bench.expressions [--calls N] [--rounds R]`.
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from asteval import Interpreter

from rules_engine.expr import compile_expression
from rules_engine.registry import names_for_triggers

TARGET_RATIO = 4.0

GUARDS = [
    "price > 40000 and balance('ZUSD') >= 100",
    "ask - bid < price / 1000 and symbol in ['XBTUSD', 'ETHUSD']",
    "signal['action'] == 'buy' and signal['qty'] * price_of('XBTUSD') <= balance('ZUSD')",
    "max(bid, ask) - min(bid, ask) < 5 and abs(mid - last) * 100 < price",
]

RUNTIME = {
    "balance": lambda asset: Decimal("1500.25"),
    "price_of": lambda symbol: Decimal("43000.5"),
    "open_orders": lambda pair: [],
    "now": 1_700_000_000.0,
}

CONTEXT = {
    "price": Decimal("43000.5"),
    "bid": Decimal("43000"),
    "ask": Decimal("43001"),
    "mid": Decimal("43000.5"),
    "last": Decimal("43000.4"),
    "symbol": "XBTUSD",
    "signal": {"action": "buy", "qty": Decimal("0.01")},
}


def seconds_per_call(run: Callable[[], Any], calls: int) -> float:
    gc.disable()  # as timeit does: a collection would land on whichever side runs then
    try:
        start = time.perf_counter()
        for _ in range(calls):
            run()
        return (time.perf_counter() - start) / calls
    finally:
        gc.enable()


def measure(calls: int, rounds: int) -> tuple[float, float]:
    """Microseconds per guard evaluation: (compiled, asteval eval)."""
    names = names_for_triggers(["price"]) | {"signal"}
    compiled = [compile_expression(source, names) for source in GUARDS]
    env = {**RUNTIME, **CONTEXT}
    interpreter = Interpreter(minimal=True, use_numpy=False, user_symbols=dict(RUNTIME))

    def run_compiled() -> list[Any]:
        return [expression.evaluate(env) for expression in compiled]

    def run_asteval() -> list[Any]:
        interpreter.symtable.update(CONTEXT)
        return [interpreter.eval(source, raise_errors=True) for source in GUARDS]

    expected = run_asteval()
    if run_compiled() != expected or not all(isinstance(result, bool) for result in expected):
        raise SystemExit(f"the two evaluators disagree: {run_compiled()} != {expected}")
    # rounds alternate between the two so that a busy machine slows both alike
    best_compiled = best_asteval = float("inf")
    for _ in range(rounds):
        best_compiled = min(best_compiled, seconds_per_call(run_compiled, calls))
        best_asteval = min(best_asteval, seconds_per_call(run_asteval, calls))
    per_guard = len(GUARDS) * 1e-6
    return best_compiled / per_guard, best_asteval / per_guard


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.expressions", description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=2000, help="evaluations of all guards per round")
    parser.add_argument("--rounds", type=int, default=7)
    args, _ = parser.parse_known_args()
    compiled, asteval_eval = measure(args.calls, args.rounds)
    ratio = asteval_eval / compiled
    print(f"guards: {len(GUARDS)}, calls per round: {args.calls}, rounds: {args.rounds} (best round)")
    print(f"compiled once, evaluate(env):     {compiled:8.2f} us per guard")
    print(f"asteval eval(source) every call:  {asteval_eval:8.2f} us per guard")
    verdict = "ok" if ratio >= TARGET_RATIO else "BELOW TARGET"
    print(f"ratio: {ratio:.1f}x cheaper (target >= {TARGET_RATIO:.0f}x): {verdict}")


if __name__ == "__main__":
    main()
