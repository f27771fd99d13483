"""Compare what a test expected with what the rules did.

Rules of matching (docs/rule-tests-and-replay.md has the user's version):
- An expectation matches outcomes of its `rule`. Without `blocked` it expects a clean fire
  (the rule fired and its run was not stopped); with `blocked` it expects that gate (`by`),
  with `reason` as a substring of the reason and `limit` among the risk limits breached.
  `fires: true/false` with `blocked` also checks whether the rule had fired first.
- `at` must equal the outcome's time within `tolerance` (default 0: offline runs are exact).
  Expectations with `at` are matched first, then those without, each to the earliest
  outcome left; `count: N` matches N outcomes.
- `intents` lists every intent of the fire, in order (balance reads excluded); each entry
  checks only the fields written. Numbers compare by value, pairs in any Kraken spelling.
  `fills` works the same way on the simulated fills of the fire's orders.
- `fires: false` without `blocked` asserts the rule does not fire (at `at`, or at all).
- Strict tests (the default) fail on any fire no expectation matched. Blocks that were not
  expected are not failures.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from rules_engine.pairs import PairRegistry, default_registry
from rules_engine.replay.describe import fill_text, intent_text, iso, number, offset, outcome_text
from rules_engine.replay.outcomes import FillRecord, Outcome
from rules_engine.rules.diagnostics import did_you_mean
from rules_engine.testing.spec import BlockSpec, EndSpec, Expectation, TestCase

_PAIR_KEYS = ("pair", "symbol")


@dataclass(frozen=True)
class Mismatch:
    """One unmet expectation (or unexpected fire): what was expected and what happened."""

    line: int | None
    time: float | None
    rule: str | None
    expected: str
    got: tuple[str, ...]


def check(case: TestCase, outcomes: Sequence[Outcome], balances: Mapping[str, Decimal], open_orders: int,
          resolve_asset: Callable[[str], str] | None = None) -> list[Mismatch]:
    """Every way `outcomes` (and the final wallet) differ from the test's expectations."""
    registry = default_registry()
    matcher = _Matcher(case, list(outcomes), registry)
    ordered = sorted(case.expectations, key=lambda e: (e.at is None, e.line))
    for expectation in ordered:
        matcher.expect(expectation)
    if case.strict:
        for outcome in outcomes:
            if outcome.fired and id(outcome) not in matcher.used:
                matcher.problems.append(Mismatch(None, outcome.time, outcome.rule_id,
                                                "nothing else fires (the test is strict)",
                                                (matcher.got(outcome),)))
    if case.end is not None:
        matcher.problems.extend(_check_end(case.end, balances, open_orders, resolve_asset))
    return sorted(matcher.problems, key=lambda p: (p.time is None, p.time or 0.0, p.line or 0))


class _Matcher:
    def __init__(self, case: TestCase, outcomes: list[Outcome], registry: PairRegistry):
        self.case = case
        self.outcomes = outcomes
        self.registry = registry
        self.used: set[int] = set()
        self.problems: list[Mismatch] = []

    def when(self, time: float) -> str:
        return f"{offset(time, self.case.start)} ({iso(time)})"

    def got(self, outcome: Outcome) -> str:
        return f"at {self.when(outcome.time)}: {outcome_text(outcome)}"

    def expect(self, e: Expectation) -> None:
        if e.negative:
            for outcome in self._of_rule(e, include_used=True):
                if outcome.fired:
                    self.used.add(id(outcome))
                    self.problems.append(Mismatch(e.line, outcome.time, e.rule, "does not fire" + self._at(e),
                                                 (self.got(outcome),)))
            return
        for _ in range(e.count or 1):
            candidates = [o for o in self._of_rule(e) if self._kind_matches(e, o)]
            exact = [o for o in candidates if not self._differences(e, o)]
            if exact:
                self.used.add(id(exact[0]))
                continue
            if candidates:
                outcome = candidates[0]
                self.used.add(id(outcome))
                got = (self.got(outcome),) + tuple(self._differences(e, outcome))
                self.problems.append(Mismatch(e.line, outcome.time, e.rule, self._describe(e), got))
                continue
            others = [o for o in self.outcomes if o.rule_id == e.rule and id(o) not in self.used]
            got = tuple(self.got(o) for o in others[:5])
            self.problems.append(Mismatch(e.line, e.at, e.rule, self._describe(e),
                                         got or (f"nothing from {e.rule}" + self._at(e),)))
            break

    def _of_rule(self, e: Expectation, include_used: bool = False) -> list[Outcome]:
        return [
            o for o in self.outcomes
            if o.rule_id == e.rule and (include_used or id(o) not in self.used)
            and (e.at is None or abs(o.time - e.at) <= e.tolerance + 1e-9)
        ]

    def _kind_matches(self, e: Expectation, o: Outcome) -> bool:
        if e.fires is not None and o.fired != e.fires:
            return False
        if e.blocked is None:
            return o.fired and o.block is None
        return o.block is not None and _block_matches(e.blocked, o)

    def _differences(self, e: Expectation, o: Outcome) -> list[str]:
        out: list[str] = []
        if e.intents is not None:
            actual = [_intent_fields(i) for i in o.intents]
            out += _list_differences("intent", e.intents, actual, [intent_text(i) for i in o.intents], self.registry)
        if e.fills is not None:
            actual = [_fill_fields(f) for f in o.fills]
            out += _list_differences("fill", e.fills, actual, [fill_text(f) for f in o.fills], self.registry)
        return out

    def _at(self, e: Expectation) -> str:
        if e.at is None:
            return ""
        tolerance = f" ±{number(Decimal(str(e.tolerance)))}s" if e.tolerance else ""
        return f" at {self.when(e.at)}{tolerance}"

    def _describe(self, e: Expectation) -> str:
        if e.blocked is not None:
            block = e.blocked
            what = "blocked" + (f" by {block.by}" if block.by else "")
            if block.limit:
                what += f" (limit {block.limit})"
            if block.reason:
                what += f' with reason containing "{block.reason}"'
            if e.fires is True:
                what = "fires, then " + what
        else:
            what = "fires"
        text = what + self._at(e)
        if e.count:
            text += f" ({e.count} times)"
        for label, items in (("intent", e.intents), ("fill", e.fills)):
            for n, item in enumerate(items or (), start=1):
                fields = " ".join(f"{k}={_show(v)}" for k, v in item.items() if k != "type")
                text += f"\n{label} {n}: {item.get('type', '')} {fields}".rstrip()
            if items is not None and not items:
                text += f"\nno {label}s"
        return text


def _block_matches(spec: BlockSpec, outcome: Outcome) -> bool:
    block = outcome.block
    assert block is not None
    if spec.by is not None and block.by != spec.by:
        return False
    if spec.reason is not None and spec.reason.lower() not in block.reason.lower():
        return False
    if spec.limit is not None:
        limits = block.detail.get("limits") or []
        if spec.limit not in limits:
            return False
    return True


def _intent_fields(intent: Any) -> dict[str, Any]:
    fields = intent.to_dict()
    fields["type"] = fields.pop("kind")
    return fields


def _fill_fields(fill: FillRecord) -> dict[str, Any]:
    return {"pair": fill.pair, "side": fill.side, "ordertype": fill.ordertype, "volume": fill.volume,
            "price": fill.price, "at": fill.time}


def _list_differences(label: str, expected: Sequence[Mapping[str, Any]], actual: list[dict[str, Any]],
                      shown: list[str], registry: PairRegistry) -> list[str]:
    out = []
    if len(expected) != len(actual):
        listing = "; ".join(shown) or "none"
        out.append(f"expected {len(expected)} {label}{'s' if len(expected) != 1 else ''}, "
                   f"got {len(actual)}: {listing}")
    # Lists of different lengths are reported above; compare the entries both have.
    for n, (want, have) in enumerate(zip(expected, actual, strict=False), start=1):
        for key, value in want.items():
            if key not in have:
                fields = sorted(k for k in have if k not in ("intent_id", "decision_id", "rule_id"))
                meant = did_you_mean(str(key), fields)
                out.append(f"{label} {n} ({shown[n - 1]}) has no field {key!r}" + (f" ({meant})" if meant else "")
                           + f"; its fields: {', '.join(fields)}")
            elif not _same(value, have[key], key, registry):
                out.append(f"{label} {n} {key}: expected {_show(value)}, got {_show(have[key])}")
    return out


def _same(expected: Any, actual: Any, key: str, registry: PairRegistry) -> bool:
    if expected is None or actual is None:
        return expected is None and actual is None
    if isinstance(expected, bool) or isinstance(actual, bool):
        return expected is actual or (isinstance(actual, str) and str(expected).lower() == actual.lower())
    if isinstance(expected, (list, tuple)) or isinstance(actual, (list, tuple)):
        if not isinstance(expected, (list, tuple)) or not isinstance(actual, (list, tuple)):
            return False
        return len(expected) == len(actual) and all(
            _same(a, b, key, registry) for a, b in zip(expected, actual, strict=True)
        )
    if key in _PAIR_KEYS:  # any spelling, TradingView's BTCUSD too
        names = registry.altnames()
        left, right = (names.get(str(v).strip().upper(), str(v).upper()) for v in (expected, actual))
        return left == right
    a, b = _as_decimal(expected), _as_decimal(actual)
    if a is not None and b is not None:
        return a == b
    return str(expected) == str(actual)


def _as_decimal(value: Any) -> Decimal | None:
    if isinstance(value, (Decimal, int, float)):
        return Decimal(str(value))
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _show(value: Any) -> str:
    if isinstance(value, Decimal):
        return number(value)
    if isinstance(value, str):
        return value if value and " " not in value else repr(value)
    return str(value)


def _check_end(end: EndSpec, balances: Mapping[str, Decimal], open_orders: int,
               resolve_asset: Callable[[str], str] | None) -> list[Mismatch]:
    problems = []
    for asset, want in end.balances.items():
        code = resolve_asset(asset) if resolve_asset else asset
        have = balances.get(code, Decimal(0))
        if have != want:
            problems.append(Mismatch(end.line, None, None, f"at the end {asset} balance is {number(want)}",
                                    (f"{asset} balance {number(have)}",)))
    if end.open_orders is not None and end.open_orders != open_orders:
        problems.append(Mismatch(end.line, None, None, f"at the end {end.open_orders} open orders",
                                (f"{open_orders} open orders",)))
    return problems
