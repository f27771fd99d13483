"""Simulator configuration: accounts, balances, prices, price source and timings,
from Python, a YAML/JSON file, or the command line.

Example file:

    seed: 7
    tick_interval: 0.5          # seconds between random-walk steps; 0 = prices move only when told
    heartbeat_interval: 1.0
    prices: {XBTUSD: "60000", ETHUSD: "3000"}
    accounts:
      - api_key: demo-key
        secret: "<base64>"
        tier: starter           # starter | intermediate | pro
        balances: {ZUSD: "10000", XXBT: "1"}
        futures_balances: {USD: "5000"}
    replay: [XBTUSD_1.csv]      # instead of the random walk
    speed: 60                   # replay 60x faster than recorded
"""

from __future__ import annotations

import base64
import difflib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml

from rules_engine.kraken.ratelimit import TIERS
from rules_engine.sim.auth import check_secret

# Starting prices of the snapshot's pairs (any of them can be overridden).
DEFAULT_PRICES: dict[str, str] = {
    "XBTUSD": "60000.0",
    "XBTEUR": "55000.0",
    "XBTGBP": "47000.0",
    "XBTUSDT": "60000.0",
    "ETHUSD": "3000.00",
    "ETHEUR": "2750.00",
    "ETHXBT": "0.05000",
    "SOLUSD": "150.00",
    "SOLEUR": "138.00",
    "XRPUSD": "0.55000",
    "ADAUSD": "0.450000",
    "DOTUSD": "6.0000",
    "LINKUSD": "14.00000",
    "LTCUSD": "80.00",
    "XDGUSD": "0.1200000",
    "USDCUSD": "1.0000",
    "USDTZUSD": "1.0000",
    "EURUSD": "1.08000",
}


@dataclass
class Account:
    """One API key pair and its balances (Kraken asset codes or friendly names)."""

    api_key: str
    secret: str = field(repr=False)
    balances: Mapping[str, Any] = field(default_factory=dict)
    tier: str = "starter"
    futures_balances: Mapping[str, Any] | None = None
    nonce_window: int = 0  # Kraken's per-key setting, in nonce ticks; 0: each nonce above the last

    def __post_init__(self) -> None:
        if not self.api_key:
            raise ValueError("an account needs an api_key")
        if isinstance(self.nonce_window, bool) or not isinstance(self.nonce_window, int) or self.nonce_window < 0:
            raise ValueError(f"account {self.api_key!r}: nonce_window must be a whole number >= 0")
        check_secret(self.secret)
        if self.tier not in TIERS:
            raise ValueError(f"account {self.api_key!r}: unknown tier {self.tier!r}; choose one of {', '.join(TIERS)}")
        self.balances = {str(k): _decimal(v, f"balance of {k}") for k, v in self.balances.items()}
        if self.futures_balances is not None:
            self.futures_balances = {str(k).upper(): _decimal(v, f"futures balance of {k}")
                                     for k, v in self.futures_balances.items()}

    @classmethod
    def generate(
        cls,
        balances: Mapping[str, Any] | None = None,
        tier: str = "starter",
        futures_balances: Mapping[str, Any] | None = None,
    ) -> Account:
        """A fresh random key pair (56-character key, 64-byte secret, as Kraken issues)."""
        api_key = base64.b64encode(secrets.token_bytes(42)).decode()
        secret = base64.b64encode(secrets.token_bytes(64)).decode()
        return cls(api_key, secret, dict(balances or {}), tier, futures_balances)

    def futures_collateral(self) -> dict[str, Decimal]:
        """Futures collateral: as configured, else a copy of the spot USD and XBT balances."""
        if self.futures_balances is not None:
            return dict(self.futures_balances)
        spot_names = {"ZUSD": "USD", "USD": "USD", "XXBT": "XBT", "XBT": "XBT", "BTC": "XBT"}
        collateral: dict[str, Decimal] = {}
        for name, amount in self.balances.items():
            currency = spot_names.get(name.upper())
            if currency is not None:
                collateral[currency] = collateral.get(currency, Decimal(0)) + Decimal(amount)
        return collateral


@dataclass
class SimConfig:
    accounts: list[Account] = field(default_factory=list)
    prices: Mapping[str, Any] = field(default_factory=dict)
    seed: int = 0
    tick_interval: float | None = 0.5
    heartbeat_interval: float = 1.0
    volatility: float = 0.0005
    replay: list[str] = field(default_factory=list)
    replay_pair: str | None = None
    speed: float = 1.0
    host: str = "127.0.0.1"
    port: int = 0
    lockout_after: int = 5
    lockout_seconds: float = 60.0
    housekeeping_interval: float = 0.2
    futures_nonce_window: int = 10_000

    def __post_init__(self) -> None:
        self.prices = {str(k): _decimal(v, f"price of {k}") for k, v in self.prices.items()}
        if self.speed <= 0:
            raise ValueError("speed must be greater than 0")
        if self.heartbeat_interval <= 0:
            raise ValueError("heartbeat_interval must be greater than 0")
        keys = [a.api_key for a in self.accounts]
        duplicates = sorted({k for k in keys if keys.count(k) > 1})
        if duplicates:
            raise ValueError(f"duplicate api_key in accounts: {', '.join(duplicates)}")

    def starting_prices(self) -> dict[str, Decimal]:
        """Default prices overridden by the configured ones (keys as given)."""
        prices = {k: Decimal(v) for k, v in DEFAULT_PRICES.items()}
        prices.update(self.prices)
        return prices


def _decimal(value: Any, what: str) -> Decimal:
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"{what}: {value!r} is not a number") from None
    if not number.is_finite() or number < 0:
        raise ValueError(f"{what}: {value!r} must be a non-negative number")
    return number


def _check_keys(data: Mapping[str, Any], allowed: set[str], where: str) -> None:
    for key in data:
        if key not in allowed:
            hint = difflib.get_close_matches(str(key), sorted(allowed), n=1)
            suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise ValueError(f"{where}: unknown key {key!r}{suggestion}")


def config_from_mapping(data: Mapping[str, Any], where: str = "config") -> SimConfig:
    """Build a SimConfig from parsed YAML/JSON, with readable errors."""
    if not isinstance(data, Mapping):
        raise ValueError(f"{where}: expected a mapping at the top level")
    _check_keys(data, {f.name for f in fields(SimConfig)}, where)
    values = dict(data)
    accounts = []
    for index, raw in enumerate(values.pop("accounts", None) or []):
        spot = f"{where}: accounts[{index}]"
        if not isinstance(raw, Mapping):
            raise ValueError(f"{spot}: expected a mapping")
        _check_keys(raw, {f.name for f in fields(Account)}, spot)
        try:
            accounts.append(Account(**raw))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{spot}: {exc}") from None
    replay = values.pop("replay", None) or []
    values["replay"] = [str(r) for r in ([replay] if isinstance(replay, str) else replay)]
    try:
        return SimConfig(accounts=accounts, **values)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: {exc}") from None


def load_config(path: Path | str) -> SimConfig:
    """Read a YAML or JSON config file (replay paths are relative to the file)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML/JSON ({exc})") from None
    config = config_from_mapping(data, str(path))
    config.replay = [str(path.parent / r) if not Path(r).is_absolute() else r for r in config.replay]
    return config
