"""What the Spot and Futures REST clients share: one way to send, sign, retry and place.

`RestClient` holds the HTTP transport (`kraken.http`), the nonce source, the retry policy
and the injected clock and sleep. A subclass says how its API signs a call
(`_sign`) and reads an answer (`_check`, the one place its error strings are mapped);
everything else is here:

- `_unsigned(...)` sends a public call; `_signed(...)` issues a nonce, signs and sends a
  private call in the key's turn (`NonceSource.turn`), on the caller's own thread (no
  hand-off to another thread on an order's way), so Kraken receives one key's calls in
  nonce order from any number of threads. The turn is held until the answer arrives or
  `send_grace` seconds (0.5) after the request was handed to the transport, whichever is
  first: by then the request has left, and a slow or unanswered call does not hold up the
  key's other calls (an order on another pair) for its whole timeout. `before_send` runs in
  that turn right before the request leaves (Spot counts the call on its rate limiter there);
  after signing, the request waits at the thread's send gate (`kraken.send_gate`: an order's
  audit record is on disk before the order leaves, its fsync overlapping the signing).
- `_retrying(fn)` repeats a call that is safe to repeat (a read, a cancel, a
  validate-only order) on transient errors, with backoff and jitter (`kraken.retry`).
- `_place(send, find, ...)` places an order at most once (`kraken.placement`): after an
  ambiguous failure it looks the order up by its client order id and never resends blind.
- `EAPI:Invalid nonce` is counted per key (`kraken.key_use`); once the key counts as shared
  a call raises `KeyInUse` instead. `_private_read` repeats a read once with a fresh nonce.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from rules_engine.kraken.credentials import Credentials
from rules_engine.kraken.errors import AuthError, KeyInUse, NonceError
from rules_engine.kraken.http import DEFAULT_TIMEOUT, DEFAULT_USER_AGENT, RequestsTransport, Transport
from rules_engine.kraken.key_use import KeyLease, nonce_conflicts
from rules_engine.kraken.nonce import NonceSource
from rules_engine.kraken.placement import place_at_most_once
from rules_engine.kraken.retry import DEFAULT_RETRY, RetryPolicy, call_with_retries
from rules_engine.kraken.send_gate import pass_gate

T = TypeVar("T")


@dataclass(frozen=True)
class Signed:
    """A private call ready to send: its body or query (as signed) and its headers."""

    headers: Mapping[str, str]
    body: str | None = None
    query: Any = None


class RestClient:
    """Base of `SpotClient` and `FuturesClient` (see the module docstring). Thread-safe."""

    def __init__(
        self,
        credentials: Credentials | None,
        base_url: str,
        *,
        nonce_source: NonceSource,
        timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
        user_agent: str = DEFAULT_USER_AGENT,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        retry: RetryPolicy = DEFAULT_RETRY,
        transport: Transport | None = None,
        settle_seconds: float = 1.0,
        send_grace: float = 0.5,
    ):
        self.credentials = credentials
        self.send_grace = send_grace
        self.base_url = base_url.rstrip("/")
        self.nonces = nonce_source
        self.transport = transport or RequestsTransport(timeout=timeout, user_agent=user_agent)
        self.retry = retry
        self.settle_seconds = settle_seconds
        self._clock = clock
        self._sleep = sleep
        self._leases: list[KeyLease] = []

    def hold_lease(self, lease: KeyLease) -> None:
        """Keep `lease` (on this client's key) until `close()`."""
        self._leases.append(lease)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_url}, {self.credentials!r})"

    # --- what a subclass provides -----------------------------------------------------

    def _sign(self, credentials: Credentials, nonce: int, http_method: str, path: str,
              params: Mapping[str, Any]) -> Signed:
        """The body/query and headers of one private call, signed with `nonce`."""
        raise NotImplementedError

    def _check(self, answer: Any, method: str) -> Any:
        """The payload of Kraken's answer, or the typed error it carries."""
        raise NotImplementedError

    # --- sending ----------------------------------------------------------------------

    def _unsigned(self, http_method: str, url: str, method: str, *, query: Any = None, body: str | None = None,
                  headers: Mapping[str, str] | None = None) -> Any:
        answer = self.transport.request(http_method, url, api_method=method, params=query, body=body, headers=headers)
        return self._check(answer, method)

    def _signed(self, http_method: str, path: str, method: str, params: Mapping[str, Any], *,
                before_send: Callable[[], None] | None = None) -> Any:
        """One private call: nonce, sign and send under the key's lock; then check."""
        creds = self.credentials
        if creds is None:
            raise AuthError("no API credentials configured", method=method)
        with self.nonces.turn(creds.fingerprint, self.send_grace) as turn:
            if before_send is not None:
                before_send()
            signed = self._sign(creds, turn.nonce, http_method, path, params)
            pass_gate()  # an order's audit record is on disk before the order leaves (`kraken.send_gate`)
            turn.handed()  # sent on this thread: no hand-off on the way; the key's turn passes on
            answer = self.transport.request(http_method, self._url(path), api_method=method,  # after send_grace
                                            params=signed.query, body=signed.body, headers=signed.headers)
        try:
            return self._check(answer, method)
        except NonceError as exc:
            conflicts = nonce_conflicts(creds.fingerprint, self._clock)
            if conflicts.note():
                raise KeyInUse(conflicts.problem() or "", errors=exc.errors, method=method) from exc
            raise

    def _nonce_retried(self, fn: Callable[[], T]) -> T:
        """`fn` (a read), repeated once with a fresh nonce if Kraken refused its nonce."""
        try:
            return fn()
        except KeyInUse:
            raise
        except NonceError:
            return fn()

    def _url(self, path: str) -> str:
        return self.base_url + path

    def _retrying(self, fn: Callable[[], T]) -> T:
        return call_with_retries(fn, policy=self.retry, sleep=self._sleep, clock=self._clock)

    def _place(self, send: Callable[[], T], find: Callable[[], T | None], *, method: str, client_id: str | None,
               deadline: float | None) -> T:
        return place_at_most_once(
            send,
            find,
            method=method,
            client_id=client_id,
            deadline=deadline,
            policy=self.retry,
            clock=self._clock,
            sleep=self._sleep,
            settle_seconds=self.settle_seconds,
        )

    # --- lifecycle --------------------------------------------------------------------

    def close(self) -> None:
        close = getattr(self.transport, "close", None)
        if close is not None:
            close()
        for lease in self._leases:
            lease.release()
        self._leases.clear()

    def __enter__(self: T) -> T:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
