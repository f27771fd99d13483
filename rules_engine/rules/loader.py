"""Load rule files into a `RuleSet`, reporting every problem in every file in one pass.

Layers, each in its own module:
1. `yaml_source`: safe, bounded YAML reading with positions (syntax, tags, duplicate keys, size).
2. `schema_check`: the JSON Schema, errors mapped to `file:line:column`.
3. `builder` (with `triggers`, `actions`, `symbols`): the typed model, expressions compiled,
   pairs and assets checked against Kraken's asset-pair list.
4. `semantic`: rule ids unique across files; warnings.

A file the schema rejects still has every part it accepted checked by the later layers: a
schema error in one rule does not hide an expression error in the next, nor an unknown pair
beside a missing price in the same action. Only parts the schema accepted whole are built, and
`LoadResult.ruleset` is None when anything at all is wrong.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rules_engine.core.model import Rule, RuleSet
from rules_engine.expr.budget import LoadBudgetExceeded, check_file_load_budget, file_load_budget
from rules_engine.pairs import PairRegistry, default_registry
from rules_engine.rules.builder import build_rules
from rules_engine.rules.collector import collector_paused
from rules_engine.rules.context import BuildContext
from rules_engine.rules.diagnostics import Diagnostic
from rules_engine.rules.file_guard import leaves_tree, read_rule_file
from rules_engine.rules.schema_check import check_schema
from rules_engine.rules.semantic import WrittenId, duplicate_ids, rule_warnings, written_ids
from rules_engine.rules.yaml_source import MAX_FILE_BYTES, read_source

RULE_FILE_SUFFIXES = (".yaml", ".yml")
RULE_TEST_SUFFIXES = (".test.yaml", ".test.yml")  # rule unit tests kept beside the rules (`rules-engine test`)


@dataclass
class LoadResult:
    """The outcome of loading: the rules (None when anything is invalid) and every diagnostic."""

    ruleset: RuleSet | None
    errors: list[Diagnostic] = field(default_factory=list)
    warnings: list[Diagnostic] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    rule_count: int = 0  # rules written in the files, valid or not

    @property
    def ok(self) -> bool:
        return not self.errors


def find_rule_files(paths: Sequence[Path | str]) -> list[Path]:
    """The rule files named by `paths`: files as given, folders searched recursively for
    `*.yaml` / `*.yml` (hidden entries and rule tests, `*.test.yaml`, skipped), and symbolic links
    to folders outside them (which `load_rules` reports without reading). Sorted by path, without
    duplicates.
    Raises FileNotFoundError for a path that does not exist."""
    found: dict[str, Path] = {}
    for entry in map(Path, paths):
        if entry.is_dir():
            for candidate in entry.rglob("*"):
                relative = candidate.relative_to(entry).parts
                if candidate.is_symlink() and candidate.is_dir() and leaves_tree(entry, candidate):
                    found.setdefault(candidate.as_posix(), candidate)  # never searched; reported when read
                    continue
                # not only regular files: a pipe or socket named *.yaml is refused by name when read
                if (candidate.suffix in RULE_FILE_SUFFIXES and not candidate.name.endswith(RULE_TEST_SUFFIXES)
                        and not candidate.is_dir() and not any(p.startswith(".") for p in relative)):
                    found.setdefault(candidate.as_posix(), candidate)
        elif entry.exists():
            found.setdefault(entry.as_posix(), entry)
        else:
            raise FileNotFoundError(f"no such file or folder: {entry}")
    return [found[key] for key in sorted(found)]


def load_rules(paths: Sequence[Path | str], registry: PairRegistry | None = None) -> LoadResult:
    """Load every rule file under `paths` (files or folders); see `find_rule_files`.
    A path that does not exist is reported as an error diagnostic."""
    sources: list[tuple[str, bytes | Diagnostic]] = []
    for entry in map(Path, paths):
        try:
            files = find_rule_files([entry])
        except FileNotFoundError as exc:
            sources.append((str(entry), Diagnostic(str(entry), 1, 1, None, str(exc), code="not-found")))
            continue
        root = entry if entry.is_dir() else None
        sources.extend((path.as_posix(), read_rule_file(path, MAX_FILE_BYTES, root)) for path in files)
    sources.sort(key=lambda item: item[0])
    return _load(sources, registry or default_registry())


def load_rules_text(text: str, filename: str = "<string>", registry: PairRegistry | None = None) -> LoadResult:
    """Load rules from a string, as if read from a file called `filename` (for tests and tools)."""
    return _load([(filename, text.encode("utf-8"))], registry or default_registry())


def load_rules_sources(sources: Sequence[tuple[str, bytes]], registry: PairRegistry | None = None) -> LoadResult:
    """Load rule files given as (name, contents), as if read from those names (replay sweeps)."""
    return _load(sorted(sources, key=lambda item: item[0]), registry or default_registry())


@dataclass
class _LoadedFile:
    diagnostics: list[Diagnostic] = field(default_factory=list)
    ids: list[WrittenId] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)
    rule_count: int = 0


def _load_file(name: str, raw: bytes, registry: PairRegistry) -> _LoadedFile:
    """One file through the layers; raises LoadBudgetExceeded when it takes too long."""
    loaded = _LoadedFile()
    document, problems = read_source(raw, name)
    loaded.diagnostics.extend(problems)
    if document is None:
        return loaded
    if _is_rule_test(document.data):
        loaded.diagnostics.append(Diagnostic(
            name, 1, 1, None, "this is a rule test file (its rules: names rule files, beside inputs:, expect: or "
            "tests:), not a rule file", "run it with rules-engine test; validate and run read rule files",
            code="schema"))
        return loaded
    check_file_load_budget()
    loaded.ids.extend(written_ids(document))
    written = document.data.get("rules") if isinstance(document.data, dict) else None
    loaded.rule_count = len(written) if isinstance(written, list) else 0
    report = check_schema(document)
    loaded.diagnostics.extend(report.diagnostics)
    check_file_load_budget()
    context = BuildContext(document, registry, report)
    loaded.rules.extend(build_rules(context))
    loaded.diagnostics.extend(context.diagnostics)
    return loaded


def _is_rule_test(data: object) -> bool:
    """Whether a file's data is a rule test's (`rules-engine test`), named where a rule file belongs."""
    if not isinstance(data, dict) or "version" in data:
        return False
    named = data.get("rules")
    names_files = isinstance(named, list) and bool(named) and all(isinstance(item, str) for item in named)
    return names_files and any(key in data for key in ("inputs", "expect", "tests", "wallet"))


def _load(sources: Sequence[tuple[str, bytes | Diagnostic]], registry: PairRegistry) -> LoadResult:
    with collector_paused():  # full collections over the loading's objects would stall other threads
        return _load_all(sources, registry)


def _load_all(sources: Sequence[tuple[str, bytes | Diagnostic]], registry: PairRegistry) -> LoadResult:
    unique_sources = dict(reversed(sources))  # first occurrence of each file name wins
    names = list(dict.fromkeys(name for name, _ in sources))
    result = LoadResult(ruleset=None, files=names)
    ids: list[WrittenId] = []
    rules: list[Rule] = []
    diagnostics: list[Diagnostic] = []
    for name in names:
        raw = unique_sources[name]
        if isinstance(raw, Diagnostic):
            diagnostics.append(raw)
            continue
        try:
            with file_load_budget():
                loaded = _load_file(name, raw, registry)
        except LoadBudgetExceeded as exc:
            diagnostics.append(Diagnostic(name, 1, 1, None, f"{exc}, its budget; none of its rules are loaded "
                                          "(split it, or simplify what its expressions compute)", code="load-budget"))
            continue
        diagnostics.extend(loaded.diagnostics)
        ids.extend(loaded.ids)
        result.rule_count += loaded.rule_count
        rules.extend(loaded.rules)
    diagnostics.extend(duplicate_ids(ids))
    for rule in rules:
        diagnostics.extend(rule_warnings(rule, registry))

    order = {name: index for index, name in enumerate(names)}
    unique = sorted(set(diagnostics), key=lambda d: (order.get(d.file, len(order)), d.line, d.column, d.message))
    result.errors = [d for d in unique if d.severity == "error"]
    result.warnings = [d for d in unique if d.severity == "warning"]
    if not result.errors:
        ranked = sorted(enumerate(rules), key=lambda item: (-item[1].priority, item[0]))
        result.ruleset = RuleSet(rules=tuple(rule for _, rule in ranked), files=tuple(names),
                                 pair_names=registry.altnames())
    return result
