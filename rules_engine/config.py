"""The engine configuration file (`--config engine.yaml`), validated by
`schemas/engine.schema.json`.

It holds everything a rule may not change: the mode, where Kraken is, risk limits, the
kill switch, signal sources and the HTTP server. Secrets are never written here: the file
names the environment variables or files that hold them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import yaml

from rules_engine.core.risk import RiskLimits
from rules_engine.durations import parse_duration
from rules_engine.kraken.endpoints import KRAKEN, KrakenEndpoints
from rules_engine.resources import schema_path
from rules_engine.rules.yaml_errors import explain

MODES = ("dry-run", "validate", "live")


class ConfigError(Exception):
    """The engine config is missing, unreadable or invalid (message says where and why)."""


@dataclass(frozen=True)
class SignalSourceSettings:
    name: str
    secret_env: str | None = None
    secret_file: str | None = None
    passphrase_env: str | None = None
    passphrase_file: str | None = None
    schema: str | None = None
    timestamp_window: float = 300.0
    max_body_bytes: int = 65536
    dedup_window: float | None = None  # `dedup: body`: how long a payload without an id is remembered


@dataclass(frozen=True)
class ChannelSettings:
    """A notification channel: its Apprise URL(s) are read from `url_env` or `url_file`
    (they hold tokens), never written in the config."""

    name: str
    url_env: str | None = None
    url_file: str | None = None


@dataclass(frozen=True)
class NotificationSettings:
    """`notifications:`: channels by name, engine events routed to a channel, delivery."""

    channels: Mapping[str, ChannelSettings] = field(default_factory=dict)
    events: Mapping[str, str] = field(default_factory=dict)  # engine event -> channel name
    dry_run: bool = True  # deliver in dry-run too (people rehearse alerts)
    retries: int = 3
    backoff: float = 1.0
    timeout: float = 10.0


@dataclass(frozen=True)
class StoreConfig:
    """`store:` in the config: a PostgreSQL URL without password, this API key's cell id, and
    the variable holding the password (`<password_env>_FILE`: a file holding it)."""

    url: str
    key: str = "default"
    password_env: str = "RULES_ENGINE_STORE_PASSWORD"
    standby: bool = False  # high availability: wait for the key's lease instead of taking it (service.ha)
    exclusive: bool = False  # the operator declares this API key used by this engine (cluster) only
    lease_ttl: float = 6.0  # seconds a lease lasts unless renewed (renewed every lease_ttl / 3)
    release_after: float | None = None  # HA: Kraken out of reach this long -> release the lease (service.release)


def _store(value: Any, source: str) -> StoreConfig | None:
    if value is None:
        return None
    spec = {"url": value} if isinstance(value, str) else dict(value)
    url = str(spec["url"])
    try:
        parts = urlsplit(url)
        has_password = parts.password is not None
    except ValueError:
        parts, has_password = None, False
    if parts is None or parts.scheme not in ("postgresql", "postgres") or not parts.hostname:
        raise ConfigError(f"invalid engine config:\n  {source}: store: must be a postgresql://user@host:port/db URL")
    if has_password:
        raise ConfigError(f"invalid engine config:\n  {source}: store: the URL holds a password; put it in "
                          f"${spec.get('password_env', 'RULES_ENGINE_STORE_PASSWORD')} (or the file its _FILE "
                          f"variable names), never in the config")
    ttl = parse_duration(spec.get("lease_ttl", "6s"))
    if spec.get("standby") and not spec.get("exclusive"):
        raise ConfigError(f"invalid engine config:\n  {source}: store: standby: true needs exclusive: true: high "
                          f"availability is safe only if this API key is used by these engines alone and its "
                          f"nonce window is 0 (see README, Running more than one engine)")
    if not 1 <= ttl <= 600:
        raise ConfigError(f"invalid engine config:\n  {source}: store: lease_ttl must be 1s to 10m")
    release_after = parse_duration(spec["release_after"]) if "release_after" in spec else None
    if release_after is not None and not spec.get("standby"):
        raise ConfigError(f"invalid engine config:\n  {source}: store: release_after needs standby: true (another "
                          f"engine must be there to take the key)")
    if release_after is not None and release_after < 2 * ttl:
        raise ConfigError(f"invalid engine config:\n  {source}: store: release_after must be at least twice "
                          f"lease_ttl ({2 * ttl:g}s): a slow answer is not a partition")
    return StoreConfig(url, spec.get("key", "default"), spec.get("password_env", "RULES_ENGINE_STORE_PASSWORD"),
                       bool(spec.get("standby", False)), bool(spec.get("exclusive", False)), ttl, release_after)


@dataclass(frozen=True)
class EngineConfig:
    mode: str = "dry-run"
    state_dir: Path = Path("state")
    endpoints: KrakenEndpoints = KRAKEN
    feed: str = "v2"
    tier: str = "starter"
    api_key_env: str = "KRAKEN_API_KEY"
    api_secret_env: str = "KRAKEN_API_SECRET"
    futures_api_key_env: str = "KRAKEN_FUTURES_API_KEY"
    futures_api_secret_env: str = "KRAKEN_FUTURES_API_SECRET"
    risk: RiskLimits = RiskLimits()
    balance_cache: float = 10.0
    kill_cancel_open_orders: bool = True
    kill_token_env: str | None = "RULES_ENGINE_ADMIN_TOKEN"
    kill_token_file: str | None = None
    dead_man_enabled: bool = True
    dead_man_interval: float = 20.0
    dead_man_timeout: float = 60.0
    host: str = "127.0.0.1"
    port: int = 8080
    signals: Mapping[str, SignalSourceSettings] = field(default_factory=dict)
    server_limits: Mapping[str, Any] = field(default_factory=dict)  # `server.limits`: WebhookLimits' fields
    paper_balances: Mapping[str, Decimal] = field(default_factory=dict)
    feed_max_age: float = 30.0  # readiness: a feed silent this long (no tick, no heartbeat) is stale
    tick_max_age: float | None = None  # readiness: a symbol without a tick this long is stale (off by default)
    notifications: NotificationSettings = field(default_factory=NotificationSettings)
    paper_futures_balances: Mapping[str, Decimal] = field(default_factory=dict)  # the paper Futures collateral
    store: StoreConfig | None = None  # `store: postgresql://...`: PostgreSQL instead of the state dir's files
    resend_within: float = 30.0  # `recovery.resend_within`: an order proven never placed is sent this late at most
    cpu: int | None = None  # `cpu`: the one CPU the engine process runs on (None: not pinned)
    source: str | None = None


def _validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(schema_path("engine.schema.json").read_text())
    return jsonschema.Draft202012Validator(schema)


def _endpoints(kraken: Mapping[str, Any]) -> KrakenEndpoints:
    base = KRAKEN
    if "simulator" in kraken:
        url = kraken["simulator"].rstrip("/")
        ws = "ws" + url[len("http"):]
        base = KrakenEndpoints(url, f"{url}/derivatives", f"{ws}/v2", ws, f"{ws}/ws/v1", f"{ws}/auth/v2")
    overrides = {k: kraken[k] for k in ("spot_rest", "futures_rest", "ws_v2", "ws_v1", "futures_ws", "ws_auth_v2")
                 if k in kraken}
    return KrakenEndpoints(**{**base.__dict__, **overrides})


def _specific(error: jsonschema.ValidationError) -> list[jsonschema.ValidationError]:
    """A oneOf/anyOf error's problems in the branch of the value's type (`store:` given as a
    mapping: what is wrong in the mapping, not that it is no string either); itself if none."""
    wrong_type = {e.schema_path[0] for e in error.context or () if e.validator == "type" and not e.relative_path}
    inner = [e for e in error.context or () if e.schema_path[0] not in wrong_type]
    if len({e.schema_path[0] for e in inner}) != 1:  # no branch, or several, of the value's type
        return [error]
    return [p for e in inner for p in _specific(e)]


NO_CONFIG = "<defaults>"
"""`EngineConfig.source` when no config file was given."""

ENV_NAME_HINT = ("must be the name of an environment variable (capitals, digits and _, such as KRAKEN_API_SECRET), "
                 "never the secret itself: set that variable to the secret (or NAME_FILE to a file holding it) and "
                 "write only its name here")


def _message(error: jsonschema.ValidationError) -> str:
    """What is wrong, never quoting a value given where a variable's name belongs: it may be the
    secret itself, pasted into `api_secret_env`."""
    name = error.absolute_path[-1] if error.absolute_path else None
    if isinstance(name, str) and name.endswith("_env"):
        return ENV_NAME_HINT
    return error.message


def parse_config(data: Mapping[str, Any], source: str = "<config>") -> EngineConfig:
    """Validate a config mapping and build an EngineConfig; raise ConfigError listing every problem."""
    problems = sorted((p for e in _validator().iter_errors(data) for p in _specific(e)),
                      key=lambda e: list(e.absolute_path))
    if problems:
        lines = [f"{source}: {'/'.join(map(str, e.absolute_path)) or '(top level)'}: {_message(e)}" for e in problems]
        raise ConfigError("invalid engine config:\n  " + "\n  ".join(lines))
    kraken = data.get("kraken", {})
    risk = data.get("risk", {})
    kill = data.get("kill_switch", {})
    dms = data.get("dead_man_switch", {})
    server = data.get("server", {})
    signals = {
        name: SignalSourceSettings(
            name=name,
            secret_env=spec.get("secret_env"),
            secret_file=spec.get("secret_file"),
            passphrase_env=spec.get("passphrase_env"),
            passphrase_file=spec.get("passphrase_file"),
            schema=spec.get("schema"),
            timestamp_window=parse_duration(spec.get("timestamp_window", "5m")),
            max_body_bytes=spec.get("max_body_bytes", 65536),
            dedup_window=(parse_duration(spec.get("dedup_window", spec.get("timestamp_window", "5m")))
                          if spec.get("dedup") == "body" else None),
        )
        for name, spec in data.get("signals", {}).items()
    }
    health = data.get("health", {})
    notify = data.get("notifications", {})
    notifications = NotificationSettings(
        channels={name: ChannelSettings(name, spec.get("url_env"), spec.get("url_file"))
                  for name, spec in notify.get("channels", {}).items()},
        events=dict(notify.get("events", {})),
        dry_run=notify.get("dry_run", True),
        retries=notify.get("retries", 3),
        backoff=parse_duration(notify.get("backoff", "1s")),
        timeout=parse_duration(notify.get("timeout", "10s")),
    )
    unknown = sorted(f"notifications/events/{event}: no channel named {name!r}"
                     for event, name in notifications.events.items() if name not in notifications.channels)
    if unknown:
        raise ConfigError("invalid engine config:\n  " + "\n  ".join(f"{source}: {u}" for u in unknown))
    server_limits = {k: parse_duration(v) if k.endswith(("timeout", "interval")) else v
                     for k, v in server.get("limits", {}).items()}
    for key, value in server_limits.items():
        if value <= 0:
            raise ConfigError(f"invalid engine config:\n  {source}: server/limits/{key}: must be more than 0")
    return EngineConfig(
        mode=data.get("mode", "dry-run"),
        # flag (the caller's) > $RULES_ENGINE_STATE_DIR > the config's state_dir > ./state: a container's
        # variable (the Dockerfile sets /state, its volume) wins over a sample config's path
        state_dir=Path(os.environ.get("RULES_ENGINE_STATE_DIR", "").strip() or data.get("state_dir", "state")),
        endpoints=_endpoints(kraken),
        feed=kraken.get("feed", "v2"),
        tier=kraken.get("tier", "starter"),
        api_key_env=kraken.get("api_key_env", "KRAKEN_API_KEY"),
        api_secret_env=kraken.get("api_secret_env", "KRAKEN_API_SECRET"),
        futures_api_key_env=kraken.get("futures_api_key_env", "KRAKEN_FUTURES_API_KEY"),
        futures_api_secret_env=kraken.get("futures_api_secret_env", "KRAKEN_FUTURES_API_SECRET"),
        risk=RiskLimits(
            allowed_pairs=frozenset(risk["allowed_pairs"]) if "allowed_pairs" in risk else None,
            max_order_notional={k: Decimal(str(v)) for k, v in risk.get("max_order_notional", {}).items()},
            max_total_notional=Decimal(str(risk["max_total_notional"])) if "max_total_notional" in risk else None,
            max_orders_per_minute=risk.get("max_orders_per_minute"),
            max_orders_per_day=risk.get("max_orders_per_day"),
            max_open_orders=risk.get("max_open_orders"),
        ),
        balance_cache=parse_duration(data.get("balance_cache", "10s")),
        kill_cancel_open_orders=kill.get("cancel_open_orders", True),
        kill_token_env=kill.get("token_env", "RULES_ENGINE_ADMIN_TOKEN"),
        kill_token_file=kill.get("token_file"),
        dead_man_enabled=dms.get("enabled", True),
        dead_man_interval=parse_duration(dms.get("interval", "20s")),
        dead_man_timeout=parse_duration(dms.get("timeout", "60s")),
        host=server.get("host", "127.0.0.1"),
        port=server.get("port", 8080),
        signals=signals,
        server_limits=server_limits,
        paper_balances={k: Decimal(str(v)) for k, v in data.get("paper_wallet", {}).get("balances", {}).items()},
        feed_max_age=parse_duration(health.get("feed_max_age", "30s")),
        tick_max_age=parse_duration(health["tick_max_age"]) if "tick_max_age" in health else None,
        notifications=notifications,
        paper_futures_balances={k: Decimal(str(v))
                                for k, v in data.get("paper_wallet", {}).get("futures_balances", {}).items()},
        store=_store(data.get("store"), source),
        resend_within=parse_duration(data.get("recovery", {}).get("resend_within", "30s")),
        cpu=data.get("cpu"),
        source=source,
    )


def load_config(path: str | Path | None) -> EngineConfig:
    """Load the engine config file; `None` gives the defaults (dry-run against real Kraken URLs)."""
    if path is None:
        return parse_config({}, NO_CONFIG)
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: engine config file not found") from None
    except yaml.MarkedYAMLError as exc:
        message, line, column = explain(exc, path.read_text())
        raise ConfigError(f"{path}:{line}:{column}: not valid YAML: {message}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the engine config must be a mapping of settings")
    return parse_config(data, str(path))
