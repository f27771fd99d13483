"""Signing cost per private request: microseconds to nonce, encode and sign one call.

Measures what the client does under the key's lock before a request leaves: issue a
nonce, build the body (form or JSON) and compute `API-Sign` (Spot) or `Authent`
(Futures), for a typical AddOrder / sendorder. Also the bare HMAC for comparison.
Run: `python -m bench.signing`.
"""

from __future__ import annotations

import base64
import statistics
import timeit
from collections.abc import Callable
from decimal import Decimal

from rules_engine.kraken.credentials import Credentials
from rules_engine.kraken.nonce import NonceSource
from rules_engine.kraken.order_codec import AddOrder, SendOrder, encode_add_order, encode_send_order
from rules_engine.kraken.params import form_body, json_body
from rules_engine.kraken.signing import spot_signature

SECRET = base64.b64encode(bytes(range(64))).decode()
CREDS = Credentials("bench-key", SECRET)
# The orders are encoded once, before the key's lock (as the executors do); the cases
# measure what happens under the lock.
ORDER = encode_add_order(AddOrder(
    "XBTUSD", "buy", "limit", Decimal("1.25"), price=Decimal("37500"), oflags=("post",),
    cl_ord_id="6d1b345e-2821-40e2-ad83-4ecb18a06876",
)).params
FUTURES_ORDER = form_body(encode_send_order(SendOrder(
    "lmt", "PF_XBTUSD", "buy", Decimal(1), limit_price=Decimal(37500), cli_ord_id="6d1b345e",
)).params)


def _per_call_us(fn: Callable[[], object], number: int = 20_000, repeat: int = 7) -> tuple[float, float]:
    """Median and best microseconds per call over `repeat` runs of `number` calls."""
    runs = [t / number * 1e6 for t in timeit.repeat(fn, number=number, repeat=repeat)]
    return statistics.median(runs), min(runs)


def main() -> None:
    nonces = NonceSource()
    fp = CREDS.fingerprint

    def spot(encode: Callable[..., str]) -> Callable[[], str]:
        def call() -> str:
            with nonces.issue(fp) as nonce:
                body = encode({"nonce": nonce, **ORDER})
                return CREDS.spot_sign("/0/private/AddOrder", nonce, body)

        return call

    def futures() -> str:
        with nonces.issue(fp + "-futures") as nonce:
            return CREDS.futures_sign("/derivatives/api/v3/sendorder", str(nonce), FUTURES_ORDER)

    body = form_body({"nonce": 1616492376594, **ORDER})
    cases = [
        ("spot AddOrder, form body (nonce + encode + sign)", spot(form_body)),
        ("spot AddOrder, JSON body (nonce + encode + sign)", spot(json_body)),
        ("futures sendorder (nonce + sign)", futures),
        ("bare spot HMAC-SHA512 (sign only)",
         lambda: spot_signature(SECRET, "/0/private/AddOrder", 1616492376594, body)),
    ]
    print(f"{'case':52} {'median µs':>10} {'best µs':>9}")
    for name, fn in cases:
        median, best = _per_call_us(fn)
        print(f"{name:52} {median:10.2f} {best:9.2f}")


if __name__ == "__main__":
    main()
