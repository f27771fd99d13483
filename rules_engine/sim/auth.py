"""Signature and nonce checks, exactly as Kraken documents them. Pure: time is passed in.

Spot: `API-Key` must name a known key, `API-Sign` must equal
`b64(HMAC-SHA512(b64decode(secret), uri_path + SHA256(nonce + raw_body)))` over the body
exactly as received (form or JSON text), and the nonce must be an unsigned 64-bit integer
strictly greater than the last one accepted for that key (or within the key's nonce window,
`nonces.NonceBook`). Checks run in that order:
`EAPI:Invalid key`, `EAPI:Invalid nonce` (missing or malformed), `EAPI:Invalid signature`,
`EAPI:Invalid nonce` (not increasing). `lockout_after` invalid keys in a row from one
client address lock that address out (`EGeneral:Temporary lockout`) for `lockout_seconds`.

Futures: `APIKey`, `Authent` =
`b64(HMAC-SHA512(b64decode(secret), SHA256(postData + Nonce + endpointPath)))` with the
`/derivatives` prefix removed from the path. The `Nonce` header is optional, as Kraken
says; when sent it may not repeat (`nonceDuplicate`) nor fall more than `nonce_window`
below the highest one seen (`nonceBelowThreshold`), since Kraken tolerates nonces that
arrive slightly out of order.
"""

from __future__ import annotations

import base64
import binascii
from collections import deque
from collections.abc import Iterable

from rules_engine.kraken.signing import futures_signature, signatures_match, spot_signature
from rules_engine.paper.errors import ExchangeError, FuturesError
from rules_engine.sim.nonces import NonceBook

MAX_NONCE = 2**64 - 1


def check_secret(secret: str) -> None:
    """Raise ValueError (without echoing the secret) unless it is valid base64."""
    try:
        base64.b64decode(secret, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the API secret is not valid base64") from None


class SpotAuth:
    def __init__(self, lockout_after: int = 5, lockout_seconds: float = 60.0):
        self.lockout_after = lockout_after
        self.lockout_seconds = lockout_seconds
        self._secrets: dict[str, str] = {}
        self.nonces = NonceBook()
        self._misses: dict[str, int] = {}
        self._locked_until: dict[str, float] = {}

    def add_key(self, api_key: str, secret: str, nonce_window: int = 0) -> None:
        check_secret(secret)
        self.nonces.set_window(api_key, nonce_window)
        self._secrets[api_key] = secret

    def last_nonce(self, api_key: str) -> int:
        return self.nonces.last(api_key)

    def authenticate(
        self,
        *,
        api_key: str | None,
        api_sign: str | None,
        uri_path: str,
        nonce: str | None,
        raw_body: str,
        client: str,
        now: float,
    ) -> str:
        """Return the API key the request is signed with, or raise ExchangeError."""
        if self._locked_until.get(client, 0.0) > now:
            raise ExchangeError("EGeneral:Temporary lockout")
        secret = self._secrets.get(api_key or "")
        if secret is None:
            self._misses[client] = self._misses.get(client, 0) + 1
            if self._misses[client] >= self.lockout_after:
                self._misses[client] = 0
                self._locked_until[client] = now + self.lockout_seconds
            raise ExchangeError("EAPI:Invalid key")
        self._misses.pop(client, None)
        assert api_key is not None
        if nonce is None or not nonce.isdigit() or int(nonce) > MAX_NONCE:
            raise ExchangeError("EAPI:Invalid nonce")
        if not api_sign or not signatures_match(spot_signature(secret, uri_path, nonce, raw_body), api_sign):
            raise ExchangeError("EAPI:Invalid signature")
        if not self.nonces.accept(api_key, int(nonce)):
            raise ExchangeError("EAPI:Invalid nonce")
        return api_key


class FuturesAuth:
    def __init__(self, nonce_window: int = 10_000, remembered: int = 1000):
        self.nonce_window = nonce_window
        self._secrets: dict[str, str] = {}
        self._highest: dict[str, int] = {}
        self._seen: dict[str, deque[int]] = {}
        self._remembered = remembered

    def add_key(self, api_key: str, secret: str) -> None:
        check_secret(secret)
        self._secrets[api_key] = secret

    def authenticate(
        self,
        *,
        api_key: str | None,
        authent: str | None,
        nonce: str | None,
        endpoint_path: str,
        post_data: Iterable[str],
    ) -> str:
        """Return the API key, or raise FuturesError. `post_data` lists the accepted
        renderings of the parameters (as sent, and url-decoded)."""
        secret = self._secrets.get(api_key or "")
        if secret is None or not authent:
            raise FuturesError("authenticationError")
        assert api_key is not None
        nonce_text = nonce or ""
        if nonce_text and not nonce_text.isdigit():
            raise FuturesError("authenticationError")
        if not any(
            signatures_match(futures_signature(secret, endpoint_path, nonce_text, data), authent)
            for data in dict.fromkeys(post_data)
        ):
            raise FuturesError("authenticationError")
        if nonce_text:
            value, seen = int(nonce_text), self._seen.setdefault(api_key, deque(maxlen=self._remembered))
            if value in seen:
                raise FuturesError("nonceDuplicate")
            if value < self._highest.get(api_key, 0) - self.nonce_window:
                raise FuturesError("nonceBelowThreshold")
            seen.append(value)
            self._highest[api_key] = max(value, self._highest.get(api_key, 0))
        return api_key
