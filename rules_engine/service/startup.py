"""What the service checks and reads before it starts (and again on a reload): the rules'
needs, the signal sources and their secrets, the kill switch token. Every
problem is a `StartupError` whose message says what to fix."""

from __future__ import annotations

import difflib
import logging
from collections.abc import Mapping
from pathlib import Path

from rules_engine.config import EngineConfig
from rules_engine.core.model import RuleSet
from rules_engine.needs import RuleNeeds, rule_needs
from rules_engine.redact import register_secret
from rules_engine.rules import LoadResult, load_signal_schema
from rules_engine.schedule import validate_timer
from rules_engine.secret_reader import SecretError, load_secret
from rules_engine.service.signals import SignalSourceConfig

log = logging.getLogger("rules_engine.service")

MAX_REPORTED_ERRORS = 50
MIN_KILL_TOKEN = 16
MIN_SIGNAL_SECRET = 16  # shorter ones are accepted, with a warning


class StartupError(Exception):
    """The service refused to start; the message says why (exit code 1)."""


def checked_needs(ruleset: RuleSet) -> RuleNeeds:
    """What the rules need from the service; raises StartupError for a timer that cannot run."""
    needs = rule_needs(ruleset)
    problems = []
    for rule_id, index, trigger in needs.timers:
        try:
            validate_timer(trigger)
        except ValueError as exc:
            problems.append(f"rule {rule_id} trigger {index}: {exc}")
    if problems:
        raise StartupError("invalid timers:\n  " + "\n  ".join(problems))
    return needs


def signal_sources(config: EngineConfig, needs: RuleNeeds,
                   environ: Mapping[str, str]) -> dict[str, SignalSourceConfig]:
    """The configured signal sources with their secrets (registered for redaction)."""
    sources = {}
    for name, settings in config.signals.items():
        try:
            schema = load_signal_schema(settings.schema) if settings.schema else None
            source = SignalSourceConfig.from_settings(settings, schema, environ)
        except (SecretError, LookupError, ValueError) as exc:
            raise StartupError(f"signal source {name!r}: {exc}") from None
        for what, secret in (("secret", source.secret), ("passphrase", source.passphrase)):
            if secret:
                register_secret(secret)
                if len(secret) < MIN_SIGNAL_SECRET:
                    log.warning("signal source %r: its %s is %d characters long; use %d or more random characters: "
                                "it is masked wherever it appears in logs and the audit log, so a short one masks "
                                "ordinary words there too (and is easier to guess)", name, what, len(secret),
                                MIN_SIGNAL_SECRET)
        sources[name] = source
    for missing in sorted(needs.signal_sources - sources.keys()):
        if config.store is not None:  # signal fan-out: the intake verifies and delivers the provider's signals
            log.info("rules listen to signal source %r, which the engine config does not declare: they fire on "
                     "its signals fanned out by `rules-engine intake`; POST /signals/%s to this engine is refused",
                     missing, missing)
        else:
            close = difflib.get_close_matches(missing, sorted(sources), n=1)
            log.warning("rules listen to signal source %r, which the engine config does not declare: "
                        "POST /signals/%s will be refused%s", missing, missing,
                        f" (did you mean {close[0]!r}?)" if close else "")
    return sources


def kill_token(config: EngineConfig, environ: Mapping[str, str]) -> str | None:
    """The admin token for `/kill` (registered for redaction), or None: the endpoint is off
    (a warning where the account is real: validate and live)."""
    return admin_token(config.kill_token_env, config.kill_token_file, environ,
                       "no admin token (%s); the /kill endpoint is disabled (POST /kill and `rules-engine kill "
                       "--url`; SIGUSR1 and the KILL file still work)",
                       logging.INFO if config.mode == "dry-run" else logging.WARNING)


def admin_token(env: str | None, file: str | Path | None, environ: Mapping[str, str], absent: str,
                level: int = logging.INFO) -> str | None:
    """A kill switch admin token from its file (which must be readable) or environment
    variable, registered for redaction; None (logging `absent % reason` at `level`) if
    neither is set or the variable is missing. StartupError for an unreadable file or a
    short token."""
    if not (file or env):
        return None
    try:
        token = load_secret(None if file else env, file, environ)
    except SecretError as exc:
        if file:
            raise StartupError(f"kill switch token: {exc}") from None
        log.log(level, absent, exc)
        return None
    register_secret(token)
    if len(token) < MIN_KILL_TOKEN:
        raise StartupError(f"the kill switch admin token must be at least {MIN_KILL_TOKEN} characters")
    return token


def file_hashes(ruleset: RuleSet) -> dict[str, str]:
    """The SHA-256 of each rule file, by path."""
    hashes: dict[str, str] = {}
    for rule in ruleset.rules:
        if rule.source is not None:
            hashes.setdefault(rule.source.file, rule.source.file_hash)
    return dict(sorted(hashes.items()))


def load_problems(result: LoadResult) -> str:
    """Why the rules cannot run, one problem a line (the first MAX_REPORTED_ERRORS)."""
    lines = [str(d) for d in result.errors[:MAX_REPORTED_ERRORS]]
    if len(result.errors) > MAX_REPORTED_ERRORS:
        lines.append(f"... and {len(result.errors) - MAX_REPORTED_ERRORS} more")
    if not lines:
        lines = ["no rules could be loaded"]
    return f"{len(result.errors)} problem(s) in the rules:\n  " + "\n  ".join(lines)
