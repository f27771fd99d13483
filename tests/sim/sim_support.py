"""Helpers for the simulator tests: a manual clock, a simulator factory and a hand-written
Kraken client (requests + hashlib/hmac, following Kraken's documented signing only).

A module of its own (not conftest) so that test modules import it by a unique name."""

import base64
import hashlib
import hmac
import itertools
import json
import time
import urllib.parse
from decimal import Decimal

import requests

from rules_engine.sim import Account, SimConfig, Simulator

KEY = "sim-test-key"
SECRET = base64.b64encode(bytes(range(64))).decode()
OTHER_KEY = "sim-other-key"
OTHER_SECRET = base64.b64encode(bytes(range(64, 128))).decode()


class ManualClock:
    def __init__(self, start: float = 1_790_000_000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def spot_sign(secret: str, path: str, nonce: str, body: str) -> str:
    digest = hashlib.sha256((nonce + body).encode()).digest()
    mac = hmac.new(base64.b64decode(secret), path.encode() + digest, hashlib.sha512)
    return base64.b64encode(mac.digest()).decode()


def futures_sign(secret: str, endpoint_path: str, nonce: str, data: str) -> str:
    digest = hashlib.sha256((data + nonce + endpoint_path.removeprefix("/derivatives")).encode()).digest()
    return base64.b64encode(hmac.new(base64.b64decode(secret), digest, hashlib.sha512).digest()).decode()


_NONCES = itertools.count(int(time.time() * 1000))


def next_nonce() -> str:
    return str(next(_NONCES))


class SpotClient:
    """Any Kraken client: signs form or JSON bodies exactly as documented."""

    def __init__(self, base: str, key: str = KEY, secret: str = SECRET):
        self.base, self.key, self.secret = base, key, secret

    def public(self, method: str, **params) -> dict:
        return requests.get(f"{self.base}/0/public/{method}", params=params, timeout=5).json()

    def raw(self, method: str, params: dict | None = None, *, json_body: bool = False, nonce=None,
            headers: dict | None = None, timeout: float = 5) -> requests.Response:
        payload = {"nonce": next_nonce() if nonce is None else nonce, **(params or {})}
        if json_body:
            body, content_type = json.dumps(payload), "application/json"
        else:
            body, content_type = urllib.parse.urlencode(payload), "application/x-www-form-urlencoded"
        path = f"/0/private/{method}"
        sent = {"API-Key": self.key, "API-Sign": spot_sign(self.secret, path, str(payload["nonce"]), body),
                "Content-Type": content_type}
        sent.update(headers or {})
        return requests.post(self.base + path, data=body.encode(), headers=sent, timeout=timeout)

    def private(self, method: str, params: dict | None = None, **kw) -> dict:
        response = self.raw(method, params, **kw)
        assert response.status_code == 200
        return response.json()

    def ok(self, method: str, params: dict | None = None, **kw):
        body = self.private(method, params, **kw)
        assert body["error"] == [], body
        return body["result"]


class FuturesClient:
    def __init__(self, base: str, key: str = KEY, secret: str = SECRET):
        self.base, self.key, self.secret = base, key, secret

    def call(self, endpoint: str, params: dict | None = None, *, post: bool = True, nonce: str | None = None,
             authent: str | None = None) -> dict:
        data = urllib.parse.urlencode(params or {})
        path = f"/derivatives/api/v3/{endpoint}"
        nonce = next_nonce() if nonce is None else nonce
        headers = {"APIKey": self.key, "Nonce": nonce,
                   "Authent": authent or futures_sign(self.secret, path, nonce, data)}
        url = self.base.removesuffix("/derivatives") + path
        if post:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            response = requests.post(url, data=data, headers=headers, timeout=5)
        else:
            response = requests.get(f"{url}?{data}" if data else url, headers=headers, timeout=5)
        assert response.status_code == 200
        return response.json()


def make_sim(clock, **overrides) -> Simulator:
    settings = dict(
        accounts=[
            Account(KEY, SECRET, {"ZUSD": "10000", "XXBT": "1"}, "starter", {"USD": "10000"}),
            Account(OTHER_KEY, OTHER_SECRET, {"ZUSD": "100"}, "pro"),
        ],
        prices={"XBTUSD": "60000"},
        seed=1,
        tick_interval=0,
        heartbeat_interval=0.05,
    )
    settings.update(overrides)
    return Simulator(SimConfig(**settings), clock=clock)


def D(text) -> Decimal:
    return Decimal(str(text))
