"""Hostile input (issue 10): how long the worst inputs take to be refused or computed.

- the slowest expression over the largest numbers allowed (100 significant digits):
  `a ** b`, `a ** 0.5`, `exp`, `log`, `sqrt` (target: under 1 ms per evaluation);
- a signed signal body holding a 20 000-digit number, and one nested 900 deep, through
  `verify_signal` (target: under 10 ms each; before the fix the first stalled the engine 29 s);
- a rule file whose guard builds a 10 000-digit decimal, through `load_rules` (target: under
  100 ms; before the fix 18.6 s).

Run: `python -m bench.hostile`.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from rules_engine.expr import compile_expression
from rules_engine.registry import names_for_triggers
from rules_engine.rules import load_rules_text
from rules_engine.service.signals import SignalSourceConfig, verify_signal

SECRET = "bench-secret"
NOW = 1_718_000_000.0
SLOW_RULE = """version: 1
rules:
  - id: slow
    triggers: [{type: timer, every: 1m}]
    when: "scheduled_time > 0 and decimal('1.' + '1'*9990) ** 1.5 > 0"
    actions: [{type: cancel_all}]
"""


def best_of(run: Callable[[], Any], rounds: int = 5, calls: int = 20) -> float:
    """Seconds per call, best round."""
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(calls):
            run()
        best = min(best, (time.perf_counter() - started) / calls)
    return best


def _signed_check(body: bytes) -> Callable[[], Any]:
    config = SignalSourceConfig(name="bot", secret=SECRET, max_body_bytes=1 << 20)
    stamp = str(int(NOW))
    headers = {"X-Timestamp": stamp,
               "X-Signature": "sha256=" + hmac.new(SECRET.encode(), f"{stamp}.".encode() + body,
                                                   hashlib.sha256).hexdigest()}
    return lambda: verify_signal(config, headers, body, NOW, lambda *args: False)


def report(name: str, seconds: float, target: float) -> None:
    verdict = "ok" if seconds < target else "SLOW"
    print(f"{name:58s} {seconds * 1000:9.3f} ms (target < {target * 1000:g} ms): {verdict}")


def main() -> None:
    big = Decimal("1." + "7" * 99)
    expression = compile_expression("min(signal.a ** signal.b, signal.a ** 0.5, exp(signal.b), log(signal.a), "
                                    "sqrt(signal.a)) > 0", names_for_triggers(["signal"]))
    env = {"signal": {"a": big, "b": big}}
    report("expression over 100-digit numbers", best_of(lambda: expression.evaluate(env)), 0.001)
    report("signal with a 20 000-digit number (422)", best_of(_signed_check(b'{"risk": 1.' + b"1" * 20_000 + b"}")),
           0.01)
    report("signal nested 900 deep (422)", best_of(_signed_check(b'{"x": ' + b"[" * 900 + b"]" * 900 + b"}")), 0.01)
    report("rule file building a 10 000-digit decimal (error)", best_of(lambda: load_rules_text(SLOW_RULE), 3, 5),
           0.1)


if __name__ == "__main__":
    main()
