"""Kraken request signatures, exactly as Kraken documents them.

Spot (docs.kraken.com, "Spot REST Authentication"):
    API-Sign = base64(HMAC-SHA512(base64decode(secret), uri_path + SHA256(nonce + post_data)))
where `uri_path` starts at `/0/private/` and `post_data` is the exact body sent (form-encoded
or JSON text).

Futures (docs.kraken.com, "Futures REST"):
    Authent = base64(HMAC-SHA512(base64decode(secret), SHA256(post_data + nonce + endpoint_path)))
where `endpoint_path` is `/api/v3/...` (any `/derivatives` prefix removed) and `post_data`
is the url-encoded query/body string.

Used by the clients to sign and by the simulator to verify, so both sides share one
implementation of the documented formula (and the test vectors pin it to Kraken's).
"""

from __future__ import annotations

import base64
import hashlib
import hmac


def spot_signature(secret_b64: str, uri_path: str, nonce: str | int, post_data: str) -> str:
    """The `API-Sign` header value for a Spot private request."""
    digest = hashlib.sha256((str(nonce) + post_data).encode()).digest()
    mac = hmac.digest(base64.b64decode(secret_b64), uri_path.encode() + digest, "sha512")  # one-shot, in C
    return base64.b64encode(mac).decode()


def futures_endpoint_path(path: str) -> str:
    """`/derivatives/api/v3/sendorder` -> `/api/v3/sendorder` (the signed form)."""
    return path.removeprefix("/derivatives")


def futures_signature(secret_b64: str, endpoint_path: str, nonce: str, post_data: str) -> str:
    """The `Authent` header value for a Futures private request."""
    message = (post_data + nonce + futures_endpoint_path(endpoint_path)).encode()
    digest = hashlib.sha256(message).digest()
    mac = hmac.digest(base64.b64decode(secret_b64), digest, "sha512")
    return base64.b64encode(mac).decode()


def signatures_match(expected: str, given: str) -> bool:
    """Constant-time comparison of two signatures."""
    return hmac.compare_digest(expected.encode(), given.encode())
