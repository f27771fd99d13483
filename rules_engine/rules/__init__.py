"""The rule language: load YAML rule files into the typed model of `rules_engine.core.model`.

    from rules_engine.rules import load_rules
    result = load_rules(["rules/"])
    if result.ruleset is None:
        for problem in result.errors:
            print(problem)          # rules/btc.yaml:12:7: rule "btc-dip-buy": ...

`load_rules_text` loads from a string (tests, tools); `load_signal_schema` gives the webhook a
signal source's payload schema; `rules_validator` is the compiled rule-file schema.
"""

from rules_engine.rules.diagnostics import Diagnostic
from rules_engine.rules.loader import LoadResult, find_rule_files, load_rules, load_rules_sources, load_rules_text
from rules_engine.rules.schema_check import rules_schema, rules_validator
from rules_engine.rules.signals import load_signal_schema, signal_schema_names

__all__ = [
    "Diagnostic",
    "LoadResult",
    "find_rule_files",
    "load_rules",
    "load_rules_sources",
    "load_rules_text",
    "load_signal_schema",
    "rules_schema",
    "rules_validator",
    "signal_schema_names",
]
