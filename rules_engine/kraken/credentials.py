"""API credentials that never show their secret.

`Credentials` holds an API key and its base64 secret. Its repr and str show only a key
fingerprint (the first 12 hex digits of SHA-256 of the public key), so logging a client,
an exception or a config object cannot leak either value. Load them with
`spot_credentials()` / `futures_credentials()` from the environment:

    KRAKEN_API_KEY / KRAKEN_API_SECRET                 (Spot)
    KRAKEN_FUTURES_API_KEY / KRAKEN_FUTURES_API_SECRET (Futures)

or from files named by `<NAME>_FILE` (e.g. `KRAKEN_API_SECRET_FILE=/run/secrets/kraken`),
the form Docker and Kubernetes secrets use. Surrounding whitespace is stripped.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from pathlib import Path
from typing import Mapping

from rules_engine.kraken.signing import futures_signature, spot_signature


class CredentialsError(ValueError):
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


def _read(name: str, environ: Mapping[str, str]) -> str | None:
    value = environ.get(name)
    path = environ.get(f"{name}_FILE")
    if value and path:
        raise CredentialsError(f"both {name} and {name}_FILE are set; set one")
    if value:
        return value
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise CredentialsError(f"cannot read {name}_FILE ({path}): {exc.strerror}") from None
    return None


def credentials_from_env(prefix: str, environ: Mapping[str, str] | None = None) -> Credentials | None:
    """`<prefix>_API_KEY` and `<prefix>_API_SECRET` (or their `_FILE` forms); None if neither is set."""
    env = os.environ if environ is None else environ
    key, secret = _read(f"{prefix}_API_KEY", env), _read(f"{prefix}_API_SECRET", env)
    if key is None and secret is None:
        return None
    if key is None or secret is None:
        missing = f"{prefix}_API_KEY" if key is None else f"{prefix}_API_SECRET"
        raise CredentialsError(f"{missing} (or {missing}_FILE) is not set")
    return Credentials(key, secret)


def spot_credentials(environ: Mapping[str, str] | None = None) -> Credentials | None:
    """Spot credentials from `KRAKEN_API_KEY` / `KRAKEN_API_SECRET` (or `_FILE`)."""
    return credentials_from_env("KRAKEN", environ)


def futures_credentials(environ: Mapping[str, str] | None = None) -> Credentials | None:
    """Futures credentials from `KRAKEN_FUTURES_API_KEY` / `KRAKEN_FUTURES_API_SECRET` (or `_FILE`)."""
    return credentials_from_env("KRAKEN_FUTURES", environ)
