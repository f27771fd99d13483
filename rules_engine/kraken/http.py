"""HTTP for the Kraken clients: one keep-alive `requests.Session`, errors mapped to the tree.

`RequestsTransport.request` returns the decoded JSON body or raises a `TransportError`:

- `ConnectError`: the connection was never made (refused, DNS, connect timeout); safe to resend.
- `ReadTimeout` / other `TransportError`: the request may have reached Kraken; ambiguous.
- `HTTPStatusError`: a status other than 200 without a Kraken envelope in the body.
- `BadResponse`: a 200 whose body is not JSON.

A non-200 answer that still carries a Kraken envelope (`error` list, or Futures `result`)
is returned, so that the envelope's own error decides the exception type.
Tests swap in any object with the same `request` method (see `Transport`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from rules_engine import __version__
from rules_engine.kraken.errors import (
    BadResponse,
    ConnectError,
    HTTPStatusError,
    ReadTimeout,
    TransportError,
)

DEFAULT_USER_AGENT = f"rules-engine/{__version__} (+python-requests)"
DEFAULT_TIMEOUT = (3.05, 10.0)  # (connect, read) seconds


class Transport(Protocol):
    def request(
        self,
        http_method: str,
        url: str,
        *,
        api_method: str,
        params: Mapping[str, Any] | None = None,
        body: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """Send one request; return the decoded JSON body or raise a TransportError."""
        ...


def _is_connect_failure(exc: requests.ConnectionError) -> bool:
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, (NewConnectionError, ConnectTimeoutError))


def _has_envelope(body: Any) -> bool:
    return isinstance(body, Mapping) and (bool(body.get("error")) or "result" in body)


class RequestsTransport:
    """One `requests.Session` (keep-alive pool) with explicit timeouts and a User-Agent."""

    def __init__(
        self,
        *,
        timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
        user_agent: str = DEFAULT_USER_AGENT,
        session: requests.Session | None = None,
        environment: dict[tuple[str, str], dict[str, Any]] | None = None,
    ):
        self.timeout = timeout
        self.session = session or requests.Session()
        self.session.headers["User-Agent"] = user_agent
        # The environment's proxies and CA bundle, read once per origin instead of on every request
        # (requests walks the whole environment each time: 16% of a 300-key worker's CPU per signal).
        # `environment`: a cache shared by several transports of the process (a worker's cells: each
        # cell's first call walked an environment of hundreds of credentials, 10-20 ms at a takeover).
        self._environment: dict[tuple[str, str], dict[str, Any]] = {} if environment is None else environment
        self._trust_env, self.session.trust_env = self.session.trust_env, False

    def _settings(self, url: str) -> dict[str, Any]:
        origin = urlsplit(url)[:2]
        found = self._environment.get(origin)
        if found is None:
            found = {"proxies": {}, "verify": None}  # None: the session's own
            if self._trust_env:  # what requests.Session.merge_environment_settings reads
                found["proxies"] = requests.utils.get_environ_proxies(url, no_proxy=None)
                found["verify"] = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
            self._environment[origin] = found
        return found

    def request(
        self,
        http_method: str,
        url: str,
        *,
        api_method: str,
        params: Mapping[str, Any] | None = None,
        body: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        try:
            response = self.session.request(
                http_method,
                url,
                params=params,
                data=body.encode() if body is not None else None,
                headers=dict(headers or {}),
                timeout=self.timeout,
                allow_redirects=False,
                **self._settings(url),
            )
        except requests.ConnectionError as exc:
            if _is_connect_failure(exc):
                raise ConnectError(f"cannot connect: {type(exc).__name__}", method=api_method) from None
            raise TransportError(f"connection lost: {type(exc).__name__}", method=api_method) from None
        except requests.ReadTimeout:
            raise ReadTimeout("no answer within the read timeout", method=api_method) from None
        except requests.RequestException as exc:
            raise TransportError(f"request failed: {type(exc).__name__}", method=api_method) from None
        try:
            decoded = json.loads(response.content)
        except ValueError:
            decoded = None
        if response.status_code == 200:
            if decoded is None:
                raise BadResponse("the answer is not JSON", method=api_method)
            return decoded
        if _has_envelope(decoded):
            return decoded
        raise HTTPStatusError(response.status_code, method=api_method)

    def close(self) -> None:
        self.session.close()
