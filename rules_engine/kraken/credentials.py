"""API credentials that never show their secret.

`Credentials` holds an API key and its base64 secret. Its repr and str show only a key
fingerprint (the first 12 hex digits of SHA-256 of the public key), so logging a client,
an exception or a config object cannot leak either value. Load them from the environment
with `spot_credentials()` / `futures_credentials()` (other names: `load_credentials`):

    KRAKEN_API_KEY / KRAKEN_API_SECRET                 (Spot)
    KRAKEN_FUTURES_API_KEY / KRAKEN_FUTURES_API_SECRET (Futures)

or from files named by `<NAME>_FILE` (e.g. `KRAKEN_API_SECRET_FILE=/run/secrets/kraken`),
the form Docker and Kubernetes secrets use. Surrounding whitespace is stripped.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable, Mapping

from rules_engine.kraken.signing import futures_signature, spot_signature
from rules_engine.secret_reader import SecretError, secret_from_env


class CredentialsError(SecretError):
    """Missing or malformed credentials (the message never contains a secret)."""


class Credentials:
    """An API key and its secret; only `fingerprint` is ever shown."""

    __slots__ = ("_api_key", "_secret", "fingerprint")

    def __init__(self, api_key: str, secret: str):
        api_key, secret = api_key.strip(), secret.strip()
        if not api_key:
            raise CredentialsError("the API key is empty")
        try:
            if not base64.b64decode(secret, validate=True):
                raise ValueError
        except (binascii.Error, ValueError):
            raise CredentialsError("the API secret is not valid base64") from None
        self._api_key = api_key
        self._secret = secret
        self.fingerprint = key_fingerprint(api_key)

    @property
    def api_key(self) -> str:
        """The public key, for the `API-Key` / `APIKey` header."""
        return self._api_key

    def spot_sign(self, uri_path: str, nonce: int | str, post_data: str) -> str:
        """The `API-Sign` header for a Spot private request."""
        return spot_signature(self._secret, uri_path, nonce, post_data)

    def futures_sign(self, endpoint_path: str, nonce: str, post_data: str) -> str:
        """The `Authent` header for a Futures private request."""
        return futures_signature(self._secret, endpoint_path, nonce, post_data)

    def __repr__(self) -> str:
        return f"Credentials(key={self.fingerprint})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Credentials):
            return NotImplemented
        return (self._api_key, self._secret) == (other._api_key, other._secret)

    def __hash__(self) -> int:
        return hash(self.fingerprint)

    def __reduce__(self) -> tuple:
        raise TypeError("Credentials cannot be pickled")


def key_fingerprint(api_key: str) -> str:
    """A short, stable, non-secret name for an API key."""
    return "sha256:" + hashlib.sha256(api_key.encode()).hexdigest()[:12]


def load_credentials(
    key_env: str,
    secret_env: str,
    environ: Mapping[str, str] | None = None,
    *,
    register: Callable[[str], None] | None = None,
) -> Credentials | None:
    """Credentials from the variables `key_env` and `secret_env` (or their `<NAME>_FILE`
    forms, see `rules_engine.secret_reader.secret_from_env`); None if neither is set.
    `register` (e.g. `rules_engine.redact.register_secret`) is given each value read,
    stripped, before anything can fail."""
    try:
        key, secret = secret_from_env(key_env, environ), secret_from_env(secret_env, environ)
    except SecretError as exc:
        raise CredentialsError(str(exc)) from None
    if register is not None:
        for value in (key, secret):
            if value and value.strip():
                register(value.strip())
    if key is None and secret is None:
        return None
    if key is None or secret is None:
        missing = key_env if key is None else secret_env
        raise CredentialsError(f"{missing} (or {missing}_FILE) is not set")
    return Credentials(key, secret)


def credentials_from_env(prefix: str, environ: Mapping[str, str] | None = None) -> Credentials | None:
    """`<prefix>_API_KEY` and `<prefix>_API_SECRET` (or their `_FILE` forms); None if neither is set."""
    return load_credentials(f"{prefix}_API_KEY", f"{prefix}_API_SECRET", environ)


def spot_credentials(environ: Mapping[str, str] | None = None) -> Credentials | None:
    """Spot credentials from `KRAKEN_API_KEY` / `KRAKEN_API_SECRET` (or `_FILE`)."""
    return credentials_from_env("KRAKEN", environ)


def futures_credentials(environ: Mapping[str, str] | None = None) -> Credentials | None:
    """Futures credentials from `KRAKEN_FUTURES_API_KEY` / `KRAKEN_FUTURES_API_SECRET` (or `_FILE`)."""
    return credentials_from_env("KRAKEN_FUTURES", environ)
