"""The subscriptions file of signal fan-out (`rules-engine intake --subscriptions FILE`): which
accounts (store keys) receive each provider's signals, with their sizing, validated like a rule
file (every problem at `file:line:column`, "did you mean" for unknown keys).

    # yaml-language-server: $schema=../schemas/subscriptions.schema.json
    version: 1
    providers:
      signalco:                        # POST /signals/signalco on the intake; the rules' signal source
        secret_env: SIGNALCO_SECRET    # as the engine config's signals: (or passphrase_env, *_file)
        schema: signalco               # optional payload schema: schemas/signals/signalco.schema.json
        max_age: 30s                   # a delivery not taken by then is expired, not traded late
        accounts:
          acct-1: {scale: 1}           # the store key of acct-1's engine (its config's store.key)
          acct-2: {scale: 0.5, max_volume: 0.02}
          acct-3:                      # scale 1

Layers: YAML by the rule loader's safe reader; `schemas/subscriptions.schema.json`; then
meaning (a secret or a passphrase per provider, the payload schema exists). Each account's
sizing reaches its engine's rules as `signal.account` (`account_fields`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from rules_engine.config import SignalSourceSettings
from rules_engine.durations import parse_duration
from rules_engine.resources import schema_path
from rules_engine.rules.diagnostics import Diagnostic
from rules_engine.rules.file_schema import diagnostic_at, read_side_file
from rules_engine.rules.signal_fields import ACCOUNT_FIELD
from rules_engine.rules.signals import load_signal_schema
from rules_engine.rules.yaml_source import SourceDocument

__all__ = ["ACCOUNT_FIELD", "Provider", "Subscriptions", "SubscriptionsError", "account_fields",
           "load_subscriptions"]

SCHEMA = "subscriptions.schema.json"
CODE = "subscriptions-file"
DEFAULT_MAX_AGE = 30.0
EMPTY_FILE = "the subscriptions file is empty; it holds `version: 1` and `providers:`"


class SubscriptionsError(Exception):
    """The subscriptions file is unusable; `diagnostics` says where and why."""

    def __init__(self, diagnostics: list[Diagnostic]):
        super().__init__("\n".join(str(d) for d in diagnostics))
        self.diagnostics = diagnostics


@dataclass(frozen=True)
class Provider:
    """One provider: its signal source (verified as the engine's webhook verifies one), how
    late a delivery may be taken, and each subscribed account's sizing."""

    name: str
    source: SignalSourceSettings
    max_age: float
    accounts: Mapping[str, Mapping[str, Decimal]]


@dataclass(frozen=True)
class Subscriptions:
    file: str
    providers: Mapping[str, Provider]

    @property
    def keys(self) -> list[str]:
        """Every subscribed account, once."""
        return sorted({key for provider in self.providers.values() for key in provider.accounts})


def account_fields(key: str, sizing: Mapping[str, Decimal]) -> dict[str, Any]:
    """What a rule reads as `signal.account`: the account's store key and its sizing (`scale`
    1 unless given)."""
    return {"key": key, "scale": Decimal(1), **sizing}


def load_subscriptions(path: Path) -> Subscriptions:
    """The file's providers; raises SubscriptionsError with every problem found."""
    document = read_side_file(path, "subscriptions file", EMPTY_FILE, CODE, _validator(), SubscriptionsError)
    name = document.file
    diagnostics: list[Diagnostic] = []
    providers = {}
    for provider_name, spec in document.data["providers"].items():
        provider = _provider(document, provider_name, spec, diagnostics)
        if provider is not None:
            providers[provider_name] = provider
    if diagnostics:
        raise SubscriptionsError(sorted(set(diagnostics), key=Diagnostic.sort_key))
    return Subscriptions(name, providers)


def _provider(document: SourceDocument, name: str, spec: Mapping[str, Any],
              diagnostics: list[Diagnostic]) -> Provider | None:
    here = ("providers", name)
    if not any(spec.get(k) for k in ("secret_env", "secret_file", "passphrase_env", "passphrase_file")):
        diagnostics.append(diagnostic_at(document, here, f'provider "{name}" needs secret_env or secret_file (HMAC), '
                                         "or passphrase_env or passphrase_file", CODE, at_key=True))
        return None
    if "schema" in spec:
        try:
            load_signal_schema(spec["schema"])
        except (LookupError, ValueError) as exc:
            diagnostics.append(diagnostic_at(document, here + ("schema",), str(exc).strip("'\""), CODE))
            return None
    source = SignalSourceSettings(
        name=name, secret_env=spec.get("secret_env"), secret_file=spec.get("secret_file"),
        passphrase_env=spec.get("passphrase_env"), passphrase_file=spec.get("passphrase_file"),
        schema=spec.get("schema"), timestamp_window=parse_duration(spec.get("timestamp_window", "5m")),
        max_body_bytes=spec.get("max_body_bytes", 65536))
    max_age = parse_duration(spec["max_age"]) if "max_age" in spec else DEFAULT_MAX_AGE
    if max_age <= 0:
        diagnostics.append(diagnostic_at(document, here + ("max_age",), "max_age must be more than 0", CODE))
        return None
    accounts = {key: {k: Decimal(str(v)) for k, v in (sizing or {}).items()}
                for key, sizing in spec["accounts"].items()}
    return Provider(name, source, max_age, accounts)


@lru_cache(maxsize=1)
def _validator() -> Draft202012Validator:
    schema = json.loads(schema_path(SCHEMA).read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)
