"""Build the executor the engine config and the command line ask for.

    executor = build_executor(config, cli_live=args.live, store=store)

dry-run -> `DryRunExecutor` (paper wallet persisted in `store`); validate ->
`ValidateExecutor`; live -> `LiveExecutor` (Spot, plus Futures when its key is set). Every
one is wrapped in a `BalanceCache` of `config.balance_cache` seconds. The mode gate runs
first: a wrong combination of `mode:` and `--live`, or validate/live without credentials,
raises `LiveModeRefused` before anything connects. Nonces of the real clients persist in
`store` (its NonceStore side), so a restart never reuses one. Validate and live hold a lease
on each API key (`kraken.key_use.KeyLease`) while the executor is open: a second engine on
this machine with the same key refuses to start (`KeyInUseHere`), whatever its state dir.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from rules_engine.config import EngineConfig
from rules_engine.execution.balance_cache import BalanceCache
from rules_engine.execution.base import Executor
from rules_engine.execution.dry_run import DryRunExecutor
from rules_engine.execution.live import LiveExecutor
from rules_engine.execution.modes import LiveModeRefused, check_live_allowed
from rules_engine.execution.validate import ValidateExecutor
from rules_engine.kraken import credentials
from rules_engine.kraken.credentials import Credentials, CredentialsError
from rules_engine.kraken.futures_rest import FUTURES_NONCE_UNIT_NS, FuturesClient
from rules_engine.kraken.key_use import KeyLease
from rules_engine.kraken.nonce import NonceSource
from rules_engine.kraken.rest_client import RestClient
from rules_engine.kraken.spot_rest import SpotClient
from rules_engine.pairs import PairRegistry
from rules_engine.redact import register_secret
from rules_engine.state.protocol import EngineStore

NONCE_LEASE_SECONDS = 30
"""How far ahead of the clock each key's nonce high-water mark is reserved in the state
store. The service renews it off the order path (`service.off_path`) while less than
half is left, so an order never waits for that durable write; after a restart nonces start
above the reservation (at most this far ahead of the clock)."""


def load_credentials(key_env: str, secret_env: str, environ: Mapping[str, str] | None = None) -> Credentials | None:
    """Credentials from the variables the config names (or `<NAME>_FILE`); None if neither
    is set. Both values are registered with the redactor before anything else happens."""
    return credentials.load_credentials(key_env, secret_env, environ, register=register_secret)


def check_key_free_here(config: EngineConfig, environ: Mapping[str, str] | None = None) -> None:
    """KeyInUseHere if another engine on this machine holds the config's Spot API key (its
    `KeyLease`, taken again by `build_executor`): asked before an engine on the PostgreSQL store
    takes its key's lease, which would fence the engine that holds the key here."""
    try:
        creds = load_credentials(config.api_key_env, config.api_secret_env, environ)
    except CredentialsError:
        return  # refused with its reason by `build_executor`
    if creds is not None:
        KeyLease(creds.fingerprint, f"pid {os.getpid()} (starting)", environ).release()


def build_executor(
    config: EngineConfig,
    *,
    cli_live: bool,
    store: EngineStore,
    environ: Mapping[str, str] | None = None,
    real_balances: bool = False,
    pairs: PairRegistry | None = None,
    client_options: Mapping[str, Any] | None = None,
    nonces: Callable[..., NonceSource] = NonceSource,
    order_deadline: float | None = None,
) -> Executor:
    """The executor for `config.mode`, behind the mode gate (raises LiveModeRefused).

    `real_balances=True` lets dry-run answer `check_balance` from the real account (a
    read-only Balance call) when Spot credentials exist. `client_options` go to the
    Kraken clients (timeout, clock, sleep, retry).
    """
    check_live_allowed(config.mode, cli_live)
    options = dict(client_options or {})
    try:
        spot_creds = load_credentials(config.api_key_env, config.api_secret_env, environ)
        futures_creds = load_credentials(config.futures_api_key_env, config.futures_api_secret_env, environ)
    except CredentialsError as exc:
        raise LiveModeRefused(f"cannot load Kraken API credentials: {exc}") from None
    names = f"{config.api_key_env} and {config.api_secret_env}"
    check_live_allowed(config.mode, cli_live, credentials_present=spot_creds is not None, credential_names=names)

    def spot_client() -> SpotClient:
        return SpotClient(spot_creds, config.endpoints, tier=config.tier,
                          nonce_source=nonces(store, lease=NONCE_LEASE_SECONDS * 1_000_000_000), **options)

    leases: dict[str, KeyLease] = {}

    def leased(client: RestClient) -> None:
        """Hold the client's key for this engine (one lease per key, released on close)."""
        creds = client.credentials
        if creds is not None and creds.fingerprint not in leases:
            where = getattr(store, "path", None)  # the SQLite file, or the PostgreSQL store's URL and key
            holder = f"pid {os.getpid()}, " + (f"state dir {where.parent}" if isinstance(where, Path)
                                               else f"store {where}")
            try:
                leases[creds.fingerprint] = lease = KeyLease(creds.fingerprint, holder, environ)
            except BaseException:
                for held in leases.values():
                    held.release()
                raise
            client.hold_lease(lease)

    if config.mode == "dry-run":
        reader = spot_client().balance if real_balances and spot_creds is not None else None
        inner: Executor = DryRunExecutor.open(store, config.paper_balances, pairs=pairs, balance_reader=reader,
                                              futures_balances=config.paper_futures_balances)
    elif config.mode == "validate":
        spot = spot_client()
        leased(spot)
        inner = ValidateExecutor(spot)
    else:
        futures = None
        spot = spot_client()
        leased(spot)
        if futures_creds is not None:
            futures_nonces = nonces(store, unit_ns=FUTURES_NONCE_UNIT_NS,
                                    lease=NONCE_LEASE_SECONDS * 1_000_000_000 // FUTURES_NONCE_UNIT_NS)
            futures = FuturesClient(futures_creds, config.endpoints, nonce_source=futures_nonces, **options)
            leased(futures)
        deadline = {} if order_deadline is None else {"order_deadline": order_deadline}
        inner = LiveExecutor(spot, futures, clock=options.get("clock", time.time), **deadline)
    return BalanceCache(inner, config.balance_cache)
