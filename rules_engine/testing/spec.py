"""Read a rule test file into runnable test cases (see docs/rule-tests-and-replay.md).

Layers, each reporting every problem at `file:line:column`:
1. YAML, read by the rule loader's safe reader (positions, no tags, duplicate keys refused);
2. the schema `schemas/rule-tests.schema.json`;
3. meaning: times, series, symbols, rule ids and timer triggers; the rule files under test
   are loaded with `rules_engine.rules.load_rules` (their own errors point into them).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Set
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from rules_engine.config import ConfigError, parse_config
from rules_engine.core import RiskLimits
from rules_engine.core.events import Event, KillSwitch, Signal, Tick, TimerBeat
from rules_engine.core.model import RuleSet
from rules_engine.durations import parse_duration
from rules_engine.pairs import FUTURES_PREFIXED, PairRegistry, default_registry
from rules_engine.paper.assets import Assets
from rules_engine.paper.orders import OrderRequest
from rules_engine.replay.describe import offset
from rules_engine.risk_pairs import risk_pairs
from rules_engine.rules import Diagnostic, load_rules
from rules_engine.rules.diagnostics import did_you_mean
from rules_engine.rules.file_guard import read_rule_file
from rules_engine.rules.literal_names import pair_hint
from rules_engine.rules.loader import RULE_TEST_SUFFIXES
from rules_engine.rules.yaml_source import MAX_FILE_BYTES, JsonPath, SourceDocument, read_source
from rules_engine.testing.schema import check_test_schema
from rules_engine.testing.series import parse_series
from rules_engine.triggers.signal import SignalTrigger
from rules_engine.triggers.timer import TimerTrigger

DEFAULT_START = 1767225600.0  # 2026-01-01T00:00:00Z
TEST_FILE_SUFFIXES = RULE_TEST_SUFFIXES
# Keys written beside `tests:` that every test of the file inherits (a test may override them).
INHERITED = ("start", "wallet", "futures_wallet", "open_orders", "limits", "strict", "tolerance", "timers")
EMPTY_TEST_FILE = ("the file is empty; a test file holds `rules:` (the rule files under test) and `inputs:` "
                   "with `expect:`, or `tests:`")
RULE_FILE_NAMED_AS_TEST = (
    "this is a rule file (`version:` and rules with ids), not a test file: name rule files *.yaml "
    "(without .test) and give them a test file that lists them in `rules:` and holds `inputs:` with "
    "`expect:`, or `tests:`")
_ITEM_LISTS = ("inputs", "expect", "tests")


@dataclass(frozen=True)
class BlockSpec:
    """`blocked:` of an expectation; None fields are not checked."""

    by: str | None = None
    reason: str | None = None
    limit: str | None = None


@dataclass(frozen=True)
class Expectation:
    """One `expect:` entry. `at` is absolute (epoch seconds); `line` is where it was written."""

    rule: str
    line: int
    at: float | None = None
    tolerance: float = 0.0
    fires: bool | None = None
    blocked: BlockSpec | None = None
    intents: tuple[Mapping[str, Any], ...] | None = None
    fills: tuple[Mapping[str, Any], ...] | None = None
    count: int | None = None

    @property
    def negative(self) -> bool:
        """`fires: false` with no `blocked`: the rule must not fire."""
        return self.fires is False and self.blocked is None


@dataclass(frozen=True)
class EndSpec:
    balances: Mapping[str, Decimal]
    open_orders: int | None
    line: int


@dataclass(frozen=True)
class WalletChange:
    """An input that sets paper balances (not an engine event: the runner applies it)."""

    time: float
    balances: Mapping[str, Decimal]


@dataclass
class TestCase:
    """One test, ready to run."""

    __test__ = False  # not a pytest test class
    name: str
    file: str
    line: int
    ruleset: RuleSet
    start: float
    wallet: Mapping[str, Decimal]
    open_orders: list[OrderRequest]
    limits: RiskLimits | None
    strict: bool
    timers: bool
    until: float | None
    inputs: list[Event | WalletChange]
    expectations: list[Expectation]
    end: EndSpec | None
    futures_wallet: Mapping[str, Decimal] = field(default_factory=dict)  # the paper Futures account's collateral


@dataclass
class TestFile:
    __test__ = False  # not a pytest test class
    path: str
    tests: list[TestCase] = field(default_factory=list)
    errors: list[Diagnostic] = field(default_factory=list)


def is_test_file(path: Path) -> bool:
    return path.name.endswith(TEST_FILE_SUFFIXES)


def find_test_files(paths: list[str]) -> list[Path]:
    """Test files named by `paths`: files as given, folders searched for `*.test.yaml`.
    Raises FileNotFoundError for a path that does not exist."""
    found: dict[str, Path] = {}
    for entry in map(Path, paths):
        if entry.is_dir():
            for candidate in sorted(entry.rglob("*")):
                if candidate.is_file() and is_test_file(candidate):
                    found.setdefault(candidate.as_posix(), candidate)
        elif entry.exists():  # a pipe or device is refused by name when read
            found.setdefault(entry.as_posix(), entry)
        else:
            raise FileNotFoundError(f"no such file or folder: {entry}")
    return [found[key] for key in sorted(found)]


def load_test_file(path: Path | str, registry: PairRegistry | None = None) -> TestFile:
    """Read and check one test file; `errors` lists every problem (then `tests` is empty)."""
    path = Path(path)
    name = path.as_posix()
    result = TestFile(name)
    raw = read_rule_file(path, MAX_FILE_BYTES)  # a regular file only, its size bounded
    if isinstance(raw, Diagnostic):
        result.errors.append(raw)
        return result
    document, problems = read_source(raw, name, empty=EMPTY_TEST_FILE)
    if document is None or problems:
        result.errors.extend(problems)
        return result
    if not isinstance(document.data, dict):
        result.errors.append(Diagnostic(name, 1, 1, None,
                                        "a test file is a mapping with `rules:` and `inputs:`/`expect:` or `tests:`"))
        return result
    if _is_rule_file(document.data):
        result.errors.append(Diagnostic(name, 1, 1, None, RULE_FILE_NAMED_AS_TEST, code="test-schema"))
        return result
    schema_errors, rejected = check_test_schema(document)
    result.errors.extend(schema_errors)
    builder = _TestBuilder(document, path.parent, registry or default_registry(), rejected)
    result.tests = builder.build()
    result.errors = _in_file_order(result.errors + builder.errors)
    if result.errors:
        result.tests = []
    return result


def _is_rule_file(data: Mapping[str, Any]) -> bool:
    """A rule file saved under a test file's name: `version:` and rules written as mappings."""
    rules = data.get("rules")
    return "version" in data and isinstance(rules, list) and any(isinstance(rule, dict) for rule in rules)


def _in_file_order(errors: list[Diagnostic]) -> list[Diagnostic]:
    """The errors without repeats (an inherited key is checked once per test), each file's in
    line order, the files in the order they were first reported."""
    first: dict[str, int] = {}
    for index, diagnostic in enumerate(errors):
        first.setdefault(diagnostic.file, index)
    return sorted(dict.fromkeys(errors), key=lambda d: (first[d.file], d.line, d.column, d.message))


class _TestBuilder:
    """Checks the meaning of what the schema accepted, also in a file it rejected in part (a bad
    key in one input does not hide an unknown pair in the next, nor a misspelled rule id), so one
    run reports every problem; the tests it builds are only run when there is no error at all."""

    def __init__(self, document: SourceDocument, folder: Path, registry: PairRegistry,
                 rejected: frozenset[JsonPath] = frozenset()):
        self.doc = document
        self.folder = folder
        self.registry = registry
        self.assets = Assets(registry)
        self.errors: list[Diagnostic] = []
        self.rejected = rejected

    def accepts(self, path: JsonPath) -> bool:
        """Whether the value at `path`, and everything inside it, passed the schema."""
        return path not in self.rejected

    def fields(self, path: JsonPath, raw: Mapping[str, Any]) -> dict[str, Any]:
        """The entries of the mapping at `path` the schema accepted, and its lists of inputs,
        expectations and tests (checked item by item) when they are lists."""
        return {key: value for key, value in raw.items()
                if self.accepts(path + (key,)) or (key in _ITEM_LISTS and isinstance(value, list))}

    def error(self, path: JsonPath, message: str, hint: str | None = None) -> None:
        line, column = self.doc.position(path)
        self.errors.append(Diagnostic(self.doc.file, line, column, None, message, hint, code="test-invalid"))

    def build(self) -> list[TestCase]:
        data = self.doc.data
        accepted = self.fields((), data)
        # Without rules to test (none written, or a rule file with errors) the rest is still checked;
        # only what needs the rules (rule ids, timer triggers) waits for them.
        ruleset = self._ruleset(accepted["rules"]) if "rules" in accepted else None
        if "tests" not in accepted:
            stem = Path(self.doc.file).name
            for suffix in TEST_FILE_SUFFIXES:
                stem = stem.removesuffix(suffix)
            return [self._test(accepted, (), str(accepted.get("name", stem)), ruleset)]
        tests = []
        for index, spec in enumerate(accepted["tests"]):
            if not isinstance(spec, dict):
                continue
            merged = {key: accepted[key] for key in INHERITED if key in accepted}
            merged.update(self.fields(("tests", index), spec))
            tests.append(self._test(merged, ("tests", index), str(spec.get("name", "")), ruleset,
                                    inherited=set(INHERITED) - set(spec)))
        return tests

    def _ruleset(self, names: list[str]) -> RuleSet | None:
        paths = []
        for index, name in enumerate(names):
            target = self.folder / name
            if not target.exists():
                self.error(("rules", index), f"rule file {name} not found (paths are relative to the test file)")
            paths.append(target)
        if self.errors:
            return None
        loaded = load_rules(paths, self.registry)
        self.errors.extend(loaded.errors)
        return loaded.ruleset

    def _test(self, spec: dict[str, Any], prefix: JsonPath, name: str, ruleset: RuleSet | None,
              inherited: Set[str] = frozenset()) -> TestCase:
        """One test from the keys of `spec` the schema accepted; with `ruleset` None (the rules
        could not be loaded) everything but the rule ids is checked, and the test is never run."""
        def at(key: str) -> JsonPath:
            return (key,) if key in inherited else prefix + (key,)

        start = self._start(spec.get("start"), at("start"))
        tolerance = parse_duration(spec["tolerance"]) if "tolerance" in spec else 0.0
        case = TestCase(
            name=name,
            file=self.doc.file,
            line=self.doc.position(prefix)[0] if prefix else 1,
            ruleset=ruleset or RuleSet(rules=()),
            start=start,
            wallet=self._wallet(spec.get("wallet") or {}, at("wallet")),
            futures_wallet={c.upper(): Decimal(str(a)) for c, a in (spec.get("futures_wallet") or {}).items()},
            open_orders=[self._order(o, at("open_orders") + (i,)) for i, o in enumerate(spec.get("open_orders") or [])],
            limits=self._limits(spec.get("limits"), at("limits")),
            strict=spec.get("strict", True),
            timers=spec.get("timers", True),
            until=self._moment(spec["until"], start, at("until")) if "until" in spec else None,
            inputs=[],
            expectations=[],
            end=None,
        )
        for index, item in enumerate(spec.get("inputs") or []):
            if self.accepts(prefix + ("inputs", index)):
                case.inputs.extend(self._input(item, prefix + ("inputs", index), start, ruleset))
        case.inputs.sort(key=lambda event: event.time)  # stable: ties keep the written order
        if case.until is not None and case.inputs and case.until < case.inputs[-1].time:
            self.error(at("until"), f"until ({offset(case.until, start)}) is before the last input "
                       f"({offset(case.inputs[-1].time, start)}): it only keeps time running after the inputs",
                       "move until past them, or leave out the inputs after it")
        rules = ruleset.by_id() if ruleset is not None else None
        for index, item in enumerate(spec.get("expect") or []):
            path = prefix + ("expect", index)
            if self.accepts(path):
                case.expectations.append(self._expectation(item, path, start, tolerance, rules))
            elif isinstance(item, dict) and self.accepts(path + ("rule",)):
                self._rule_id(item.get("rule"), path + ("rule",), rules)
        if "end" in spec:
            end = spec["end"]
            case.end = EndSpec(self._wallet(end.get("balances") or {}, prefix + ("end", "balances")),
                               end.get("open_orders"), self.doc.position(prefix + ("end",))[0])
        return case

    # ------------------------------------------------------------------ values

    def _start(self, value: Any, path: JsonPath) -> float:
        if value is None:
            return DEFAULT_START
        if isinstance(value, (int, Decimal)):
            return float(value)
        moment = _rfc3339(value)
        if moment is None:
            self.error(path, f"start {value!r} is not an RFC 3339 time with a zone, e.g. 2026-01-01T00:00:00Z")
            return DEFAULT_START
        return moment

    def _moment(self, value: Any, start: float, path: JsonPath) -> float:
        if isinstance(value, (int, Decimal)):
            return start + float(value)
        if re.fullmatch(r"(\d+(\.\d+)?(ms|s|m|h|d))+", value):
            return start + parse_duration(value)
        moment = _rfc3339(value)
        if moment is None:
            self.error(path, f"{value!r} is not an RFC 3339 time with a zone, e.g. 2026-01-01T00:05:00Z")
            return start
        if moment < start:
            self.error(path, f"{value} is before the test's start")
        return moment

    def _wallet(self, wallet: Mapping[str, Any], path: JsonPath) -> dict[str, Decimal]:
        for asset in wallet:
            if self.assets.get(asset) is None:
                self.error(path + (asset,), f"unknown asset {asset!r}",
                           did_you_mean(asset, sorted(self.assets.codes)))
        return {asset: Decimal(str(amount)) for asset, amount in wallet.items()}

    def _limits(self, limits: Mapping[str, Any] | None, path: JsonPath) -> RiskLimits | None:
        if limits is None:
            return None
        try:
            risk = parse_config({"risk": dict(limits)}).risk
        except ConfigError as exc:
            self.error(path, str(exc))
            return None
        risk, problems = risk_pairs(risk, self.registry)  # as `run` reads them (BTC/USD: XBTUSD)
        for problem in problems:
            where, _, message = problem.partition(": ")
            self.error(path + (where,), message)
        return None if problems else RiskLimits(**dataclasses.asdict(risk))

    def _symbol(self, name: str, market: str | None, path: JsonPath) -> tuple[str, str]:
        if market == "futures" or (market is None and FUTURES_PREFIXED.match(name.upper())):
            return name.upper(), "futures"
        pair = self.registry.get(name)
        if pair is None:
            self.error(path, f"unknown Kraken pair {name!r}", pair_hint(self.registry, name))
            return name, "spot"
        return pair.altname, "spot"

    def _order(self, spec: Mapping[str, Any], path: JsonPath) -> OrderRequest:
        symbol, _ = self._symbol(spec["pair"], "spot", path + ("pair",))
        price = spec.get("price")
        ordertype = spec.get("ordertype", "limit")
        if price is None:
            self.error(path, f"an open {ordertype} order needs a price")
        return OrderRequest(
            pair=symbol, side=spec["side"], ordertype=ordertype, volume=Decimal(str(spec["volume"])),
            price=None if price is None else Decimal(str(price)),
            price2=Decimal(str(spec["price2"])) if "price2" in spec else None,
            cl_ord_id=spec.get("cl_ord_id"), userref=spec.get("userref"),
        )

    def _input(self, item: Mapping[str, Any], path: JsonPath, start: float,
               ruleset: RuleSet | None) -> list[Event | WalletChange]:
        time = self._moment(item["at"], start, path + ("at",)) if "at" in item else start
        if "prices" in item:
            spec = item["prices"]
            symbol, market = self._symbol(spec["symbol"], spec.get("market"), path + ("prices", "symbol"))
            try:
                every = parse_duration(spec["every"]) if "every" in spec else None
                prices, spacing = parse_series(spec["series"], every)
            except ValueError as exc:
                self.error(path + ("prices", "series"), str(exc))
                return []
            half = Decimal(str(spec.get("spread", 0))) / 2
            return [Tick(symbol, market, time + n * spacing, last=p, bid=p - half, ask=p + half)
                    for n, p in enumerate(prices)]
        if "tick" in item:
            spec = item["tick"]
            symbol, market = self._symbol(spec["symbol"], spec.get("market"), path + ("tick", "symbol"))
            last, bid, ask = (Decimal(str(spec[k])) if k in spec else None for k in ("last", "bid", "ask"))
            return [Tick(symbol, market, time, last=last, bid=bid, ask=ask)]
        if "signal" in item:
            spec = item["signal"]
            self._source(spec["source"], path + ("signal", "source"), ruleset)
            signal_id = spec.get("id") or f"{Path(self.doc.file).name}:{self.doc.position(path)[0]}"
            return [Signal(spec["source"], dict(spec["payload"]), time, signal_id)]
        if "timer" in item:
            return self._timer(item["timer"], path + ("timer",), time, ruleset)
        if "kill_switch" in item:
            spec = item["kill_switch"]
            if isinstance(spec, bool):
                return [KillSwitch(spec, time)]
            return [KillSwitch(spec["engaged"], time, spec.get("cancel_all", False), spec.get("reason", ""))]
        return [WalletChange(time, self._wallet(item["wallet"], path + ("wallet",)))]

    def _source(self, source: str, path: JsonPath, ruleset: RuleSet | None) -> None:
        """Report a signal source no rule under test listens to: the signal could do nothing."""
        if ruleset is None:
            return
        sources = sorted({t.source for r in ruleset.rules for t in r.triggers if isinstance(t, SignalTrigger)})
        if source in sources:
            return
        hint = did_you_mean(source, sources) or (
            f"the rules listen to {', '.join(sources)}" if sources else "no rule under test has a signal trigger")
        self.error(path, f"no rule under test listens to signal source {source!r}: the signal would do nothing",
                   hint)

    def _timer(self, spec: Mapping[str, Any], path: JsonPath, time: float,
               ruleset: RuleSet | None) -> list[Event | WalletChange]:
        if ruleset is None:
            return []
        rules = ruleset.by_id()
        if not self._rule_id(spec["rule"], path + ("rule",), rules):
            return []
        rule = rules[spec["rule"]]
        timers = [i for i, t in enumerate(rule.triggers) if isinstance(t, TimerTrigger)]
        if not timers:
            self.error(path + ("rule",), f"rule {rule.id!r} has no timer trigger")
            return []
        index = spec.get("trigger", timers[0])
        if index not in timers:
            self.error(path + ("trigger",), f"trigger {index} of rule {rule.id!r} is not a timer "
                                            f"(its timers: {', '.join(map(str, timers))})")
            return []
        return [TimerBeat(rule.id, index, time, scheduled_time=time)]

    def _rule_id(self, rule_id: Any, path: JsonPath, rules: Mapping[str, Any] | None) -> bool:
        """Whether `rule_id` names a rule under test (reported when not; unknown rules: True)."""
        if rules is None or not isinstance(rule_id, str) or rule_id in rules:
            return True
        self.error(path, f"no rule {rule_id!r} in the rule files under test", did_you_mean(rule_id, rules))
        return False

    def _expected_pair(self, name: Any, path: JsonPath) -> None:
        """Report an expected `pair` that names no pair (it could never compare equal)."""
        if not isinstance(name, str) or FUTURES_PREFIXED.match(name.upper()):
            return
        if self.registry.get(name) is None and name.strip().upper() not in self.registry.altnames():
            self.error(path, f"unknown Kraken pair {name!r}", pair_hint(self.registry, name))

    def _expectation(self, item: Mapping[str, Any], path: JsonPath, start: float, tolerance: float,
                     rules: Mapping[str, Any] | None) -> Expectation:
        self._rule_id(item["rule"], path + ("rule",), rules)
        blocked = item.get("blocked")
        if isinstance(blocked, str):
            blocked = BlockSpec(by=blocked)
        elif blocked is not None:
            blocked = BlockSpec(blocked.get("by"), blocked.get("reason"), blocked.get("limit"))
        fires = item.get("fires")
        if fires is False and ("intents" in item or "fills" in item):
            self.error(path + ("fires",), "fires: false cannot list intents or fills")
        if fires is False and "count" in item and blocked is None:
            self.error(path + ("count",), "count needs something to count: a fire or a block")
        for key in ("intents", "fills"):
            for n, entry in enumerate(item.get(key) or ()):
                self._expected_pair(entry.get("pair"), path + (key, n, "pair"))
        fills = None
        if "fills" in item:
            fills = tuple(
                {**fill, "at": self._moment(fill["at"], start, path + ("fills", n, "at"))} if "at" in fill else fill
                for n, fill in enumerate(item["fills"])
            )
        return Expectation(
            rule=item["rule"],
            line=self.doc.position(path)[0],
            at=self._moment(item["at"], start, path + ("at",)) if "at" in item else None,
            tolerance=parse_duration(item["tolerance"]) if "tolerance" in item else tolerance,
            fires=fires,
            blocked=blocked,
            intents=tuple(item["intents"]) if "intents" in item else None,
            fills=fills,
            count=item.get("count"),
        )


def _rfc3339(value: str) -> float | None:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.timestamp() if moment.tzinfo is not None else None
